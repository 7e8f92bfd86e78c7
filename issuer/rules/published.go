package rules

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
)

// published holds the built-in versions, one JSON file each:
// published/profiles/*.json and published/rules/*.json.
//
//go:embed published
var publishedFS embed.FS

// Published returns the built-in published profiles and rule sets, each
// validated, in file-name order. It panics if a built-in is malformed: the
// files are compiled in and tested.
func Published() (profiles []Profile, rules []RuleSet) {
	for _, b := range readDir("published/profiles") {
		var p Profile
		mustDecode(b, &p)
		profiles = append(profiles, p)
		mustValid(p.Validate())
	}
	for _, b := range readDir("published/rules") {
		var r RuleSet
		mustDecode(b, &r)
		rules = append(rules, r)
		mustValid(r.Validate())
	}
	return profiles, rules
}

func readDir(dir string) [][]byte {
	entries, err := fs.ReadDir(publishedFS, dir)
	if err != nil {
		panic(fmt.Sprintf("rules: built-ins: %v", err))
	}
	var out [][]byte
	for _, e := range entries { // ReadDir sorts by name
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := publishedFS.ReadFile(dir + "/" + e.Name())
		if err != nil {
			panic(fmt.Sprintf("rules: built-ins: %v", err))
		}
		out = append(out, b)
	}
	return out
}

func mustDecode(b []byte, v any) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		panic(fmt.Sprintf("rules: built-ins: %v", err))
	}
}

func mustValid(err error) {
	if err != nil {
		panic(fmt.Sprintf("rules: built-ins: %v", err))
	}
}
