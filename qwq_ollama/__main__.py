from qwq_ollama.console_script import main

main()
