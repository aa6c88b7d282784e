// Command parseback runs model output through a pinned Ollama release's own parsing, as its
// chat handler does (server/routes.go, ChatHandler, v0.24.0 to v0.34.4): the TEMPLATE parsed by
// its template package, the think tags inferred from it (thinking.InferTags), a thinking.Parser
// primed with the opening tag when the prompt ends with it, and a tools.Parser when the request
// has tools. It is built against github.com/ollama/ollama at the version under test (the go.mod
// is written at build time), so the parsers are that release's code, not a copy.
//
// With "parser" set (a Modelfile PARSER name, e.g. qwen3-thinking), the release's built-in
// parser (model/parsers) takes the place of both, initialised as the handler does with the
// request's last message ("last_message").
//
// Input on stdin: a JSON array of cases {"template", "prompt", "tools", "think", "chunks",
// "parser", "last_message"}.
// Each chunk is one piece of text as the runner hands it over, followed by a final empty piece
// with done set, as the runner ends a completion. Output on stdout: a JSON array with, for each
// case, the messages the handler would send ({"content", "thinking", "tool_calls"}), or
// {"error": "..."} when the template does not parse.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/ollama/ollama/api"
	"github.com/ollama/ollama/model/parsers"
	"github.com/ollama/ollama/template"
	"github.com/ollama/ollama/thinking"
	"github.com/ollama/ollama/tools"
)

type request struct {
	Template string      `json:"template"`
	Prompt   string      `json:"prompt"`
	Tools    []api.Tool  `json:"tools"`
	Think    bool        `json:"think"`
	Chunks   []string    `json:"chunks"`
	Parser   string      `json:"parser"`
	Last     api.Message `json:"last_message"`
}

type call struct {
	Name      string `json:"name"`
	Arguments any    `json:"arguments"`
}

type part struct {
	Content   string `json:"content"`
	Thinking  string `json:"thinking"`
	ToolCalls []call `json:"tool_calls"`
	Done      bool   `json:"done"`
}

type result struct {
	Parts []part `json:"parts"`
	Error string `json:"error,omitempty"`
}

func run(req request) result {
	tmpl, err := template.Parse(req.Template)
	if err != nil {
		return result{Error: err.Error()}
	}
	if req.Parser != "" {
		return runBuiltin(req)
	}
	var thinkState *thinking.Parser
	open, close := thinking.InferTags(tmpl.Template)
	if req.Think && open != "" && close != "" {
		thinkState = &thinking.Parser{OpeningTag: open, ClosingTag: close}
		if strings.HasSuffix(strings.TrimSpace(req.Prompt), open) {
			thinkState.AddContent(open)
		}
	}
	var toolParser *tools.Parser
	if len(req.Tools) > 0 {
		toolParser = tools.NewParser(tmpl.Template, req.Tools)
	}
	out := result{Parts: []part{}}
	pieces := append(append([]string{}, req.Chunks...), "")
	for i, piece := range pieces {
		done := i == len(pieces)-1
		msg := part{Content: piece, Done: done}
		if thinkState != nil {
			thought, rest := thinkState.AddContent(msg.Content)
			if thought == "" && rest == "" && !done {
				continue // the handler waits for more before it decides
			}
			msg.Thinking, msg.Content = thought, rest
		}
		if toolParser != nil {
			calls, content := toolParser.Add(msg.Content)
			if len(content) > 0 {
				msg.Content = content
			} else if len(calls) > 0 {
				for _, c := range calls {
					msg.ToolCalls = append(msg.ToolCalls, call{c.Function.Name, c.Function.Arguments})
				}
				msg.Content = ""
			} else if msg.Thinking == "" {
				if done {
					msg.Content = toolParser.Content()
					out.Parts = append(out.Parts, msg)
				}
				continue
			}
		}
		out.Parts = append(out.Parts, msg)
	}
	return out
}

// runBuiltin feeds the pieces to a built-in parser as the handler does: every piece goes in,
// and a part goes out when it carries anything or ends the reply.
func runBuiltin(req request) result {
	parser := parsers.ParserForName(req.Parser)
	if parser == nil {
		return result{Error: "no built-in parser named " + req.Parser}
	}
	parser.Init(req.Tools, &req.Last, &api.ThinkValue{Value: req.Think})
	out := result{Parts: []part{}}
	pieces := append(append([]string{}, req.Chunks...), "")
	for i, piece := range pieces {
		done := i == len(pieces)-1
		content, thought, calls, err := parser.Add(piece, done)
		if err != nil {
			return result{Parts: out.Parts, Error: "parser: " + err.Error()}
		}
		msg := part{Content: content, Thinking: thought, Done: done}
		for _, c := range calls {
			msg.ToolCalls = append(msg.ToolCalls, call{c.Function.Name, c.Function.Arguments})
		}
		if content != "" || thought != "" || len(calls) > 0 || done {
			out.Parts = append(out.Parts, msg)
		}
	}
	return out
}

func main() {
	var reqs []request
	if err := json.NewDecoder(os.Stdin).Decode(&reqs); err != nil {
		fmt.Fprintln(os.Stderr, "parseback: reading the JSON input:", err)
		os.Exit(2)
	}
	results := make([]result, len(reqs))
	for i, req := range reqs {
		results[i] = run(req)
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, "parseback: writing the result:", err)
		os.Exit(2)
	}
}
