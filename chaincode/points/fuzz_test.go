package points

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecodeArgs: strict decoding never panics, is at least as strict as
// encoding/json with DisallowUnknownFields, and what it accepts survives a
// round trip.
func FuzzDecodeArgs(f *testing.F) {
	for _, s := range []string{
		`{"items":[{"itemId":"a","points":1,"ruleVersion":{"id":"r","version":"1"},"expiresAt":"2030-01-01T00:00:00Z"}]}`,
		`{"items":[],"items":[]}`, `{"Items":[]}`, `{"items":[{"\u0069temId":"x"}]}`, `{}`, ``, `[]`, `{"items":null}`,
		`{"account":"a","points":9223372036854775807,"requestHash":"x"}`,
		`{"items":[{"itemId":"a","claim":"c","subClaims":["s1","s2"]}]}`, `{"items":[{"subClaims":[]}]}`, `{"items":[{"subClaims":null}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var strict IssueBatchArgs
		err := decodeArgs(data, &strict)
		var loose IssueBatchArgs
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		looseErr := dec.Decode(&loose)
		if err == nil && looseErr != nil && len(bytes.Trim(data, " \t\r\n")) > 0 {
			t.Fatalf("strict decoding accepted what encoding/json refuses (%v): %q", looseErr, data)
		}
		if err != nil {
			return
		}
		again, merr := json.Marshal(strict)
		if merr != nil {
			return // e.g. a time outside 0..9999 decodes but does not encode; the contract rejects it later
		}
		var back IssueBatchArgs
		if err := decodeArgs(again, &back); err != nil {
			t.Fatalf("round trip of %q failed: %v", again, err)
		}
	})
}
