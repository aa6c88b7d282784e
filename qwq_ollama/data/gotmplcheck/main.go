// Command gotmplcheck parses chat templates the way Ollama v0.24.0 parses a TEMPLATE
// (template.Parse in its template/template.go), so that qwq-ollama can refuse one that Ollama
// would refuse before any file is written.
//
// Input on stdin: a JSON array of template texts. Output on stdout: a JSON array with, for
// each, null (Ollama would accept it) or {"line": N, "message": "..."} (N counts from 1 in
// that text; 0 when the error has no line).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

// Ollama adds these functions to every template. Parsing needs only their names and
// signatures; their bodies never run here.
var funcs = template.FuncMap{
	"json":             func(v any) string { return "" },
	"currentDate":      func(args ...string) string { return "" },
	"yesterdayDate":    func(args ...string) string { return "" },
	"toTypeScriptType": func(v any) string { return "" },
}

type problem struct {
	Line    int    `json:"line"`
	Message string `json:"message"`
}

func main() {
	var texts []string
	if err := json.NewDecoder(os.Stdin).Decode(&texts); err != nil {
		fmt.Fprintln(os.Stderr, "gotmplcheck: reading the JSON input:", err)
		os.Exit(2)
	}
	results := make([]*problem, len(texts))
	for i, text := range texts {
		results[i] = check(text)
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, "gotmplcheck: writing the result:", err)
		os.Exit(2)
	}
}

// check parses as Ollama does: an unnamed template, missingkey=zero, Ollama's functions.
// Ollama then lists the template's identifiers, which fails on a {{template}} call without a
// pipeline; that is checked too.
func check(text string) *problem {
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(text)
	if err != nil {
		return fromParseError(err.Error())
	}
	for _, t := range tmpl.Templates() {
		if t.Tree == nil {
			continue
		}
		if node := callWithoutPipeline(t.Tree.Root); node != nil {
			location, _ := t.ErrorContext(node)
			return &problem{Line: lineIn(location), Message: "undefined template specified"}
		}
	}
	return nil
}

// fromParseError reads "template: NAME:LINE: message", the form of every parse error.
func fromParseError(text string) *problem {
	rest, ok := strings.CutPrefix(text, "template: :")
	if !ok {
		return &problem{Message: text}
	}
	number, message, ok := strings.Cut(rest, ": ")
	line, err := strconv.Atoi(number)
	if !ok || err != nil {
		return &problem{Message: text}
	}
	return &problem{Line: line, Message: message}
}

// lineIn reads the line from an ErrorContext location, "NAME:LINE:COLUMN".
func lineIn(location string) int {
	parts := strings.Split(location, ":")
	if len(parts) < 3 {
		return 0
	}
	line, _ := strconv.Atoi(parts[len(parts)-2])
	return line
}

// callWithoutPipeline finds a {{template "name"}} node with no pipeline, in the statement
// lists Ollama's identifier walk visits.
func callWithoutPipeline(node parse.Node) parse.Node {
	switch n := node.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, child := range n.Nodes {
			if found := callWithoutPipeline(child); found != nil {
				return found
			}
		}
	case *parse.TemplateNode:
		if n.Pipe == nil {
			return n
		}
	case *parse.IfNode:
		return inBranch(&n.BranchNode)
	case *parse.RangeNode:
		return inBranch(&n.BranchNode)
	case *parse.WithNode:
		return inBranch(&n.BranchNode)
	}
	return nil
}

func inBranch(branch *parse.BranchNode) parse.Node {
	if found := callWithoutPipeline(branch.List); found != nil {
		return found
	}
	return callWithoutPipeline(branch.ElseList)
}
