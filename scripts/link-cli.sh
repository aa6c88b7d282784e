#!/bin/sh
# Put the `qwq-ollama` of this checkout's venv where the user's shell finds it: a link in the
# first folder of the user's own (under $HOME) that is on $PATH, ~/.local/bin first. A file
# there that is not our link is left alone. Says where in one line, or, when no such folder is
# on PATH, the exact command that works instead.
# Usage: link-cli.sh VENV_BIN_QWQ_OLLAMA
set -eu
target=$1
case $target in /*) ;; *) target=$(pwd)/$target ;; esac
[ -x "$target" ] || { echo "qwq-ollama: $target is missing (run: make deps)" >&2; exit 1; }
chosen=
old_ifs=$IFS; IFS=:
for folder in $PATH; do
  case $folder in
    "$HOME/.local/bin"|"$HOME/bin") chosen=$folder; break ;;
  esac
done
IFS=$old_ifs
if [ -z "$chosen" ]; then
  echo "qwq-ollama: run it as $target (no ~/.local/bin or ~/bin on your PATH to link it into)"
  exit 0
fi
link=$chosen/qwq-ollama
if [ -e "$link" ] && [ ! -L "$link" ]; then
  echo "qwq-ollama: $link is another program, left alone; run this one as $target"
  exit 0
fi
mkdir -p "$chosen"
ln -sfn "$target" "$link"
echo "qwq-ollama: linked at $link (on your PATH)"
