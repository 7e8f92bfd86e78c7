package points

import (
	"testing"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

func TestDecodeArgsStrict(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in     string
		reason string
	}{
		{`{"from":"a","to":"b","points":1,"requestHash":"x"}`, ""},
		{``, ""},
		{`  {}  `, ""},
		{`{"From":"a"}`, "unknown_field"},
		{`{"from":"a","from":"b"}`, "duplicate_field"},
		{`{"nope":1}`, "unknown_field"},
		{`{"points":1.5}`, "malformed_args"},
		{`{"points":"1"}`, "malformed_args"},
		{`{"points":99999999999999999999}`, "malformed_args"},
		{`{} {}`, "malformed_args"},
		{`{}x`, "malformed_args"},
		{`null`, "malformed_args"},
		{`[1]`, "malformed_args"},
		{`{"from":`, "malformed_args"},
		{"{\"from\":\"\xff\"}", "malformed_args"},
	}
	for _, c := range cases {
		var a TransferArgs
		err := decodeArgs([]byte(c.in), &a)
		if got := reasonOrEmpty(err); got != c.reason {
			t.Errorf("decodeArgs(%q) = %v, want reason %q", c.in, err, c.reason)
		}
	}
	// Nested: unknown fields inside items and versions.
	for _, in := range []string{
		`{"items":[{"itemId":"a","extra":1}]}`,
		`{"items":[{"ruleVersion":{"id":"a","Version":"1"}}]}`,
		`{"items":[{"SubClaims":[]}]}`,
		`{"items":[{"subclaims":["a"]}]}`,
	} {
		var a IssueBatchArgs
		if got := reasonOrEmpty(decodeArgs([]byte(in), &a)); got != "unknown_field" {
			t.Errorf("decodeArgs(%s) reason %q", in, got)
		}
	}
	if got := reasonOrEmpty(decodeArgs([]byte(`{"items":[{"subClaims":["a"],"subClaims":["b"]}]}`), new(IssueBatchArgs))); got != "duplicate_field" {
		t.Errorf("subClaims twice: reason %q", got)
	}
	if got := reasonOrEmpty(decodeArgs([]byte(`{"items":[{"subClaims":[1]}]}`), new(IssueBatchArgs))); got != "malformed_args" {
		t.Errorf("a number as a sub-claim: reason %q", got)
	}
	var a IssueBatchArgs
	if err := decodeArgs([]byte(`{"items":[{"expiresAt":"2030-01-01T00:00:00+08:00","ruleVersion":{"id":"r","version":"1"}}]}`), &a); err != nil {
		t.Errorf("valid nested document: %v", err)
	}
	deep := ""
	for range 40 {
		deep += `{"items":[`
	}
	if got := reasonOrEmpty(decodeArgs([]byte(deep), &a)); got != "malformed_args" && got != "unknown_field" {
		t.Errorf("deep document: %q", got)
	}
}

func reasonOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	if apperr.CodeOf(err) != apperr.Invalid && apperr.CodeOf(err) != apperr.TooLarge {
		return "code:" + string(apperr.CodeOf(err))
	}
	return apperr.ReasonOf(err)
}
