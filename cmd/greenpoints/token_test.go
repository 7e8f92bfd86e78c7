package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greenpoints/greenpoints/internal/auth"
)

// TestTokenCommand: the printed token verifies against the printed JWKS,
// with the subject asked for.
func TestTokenCommand(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"token", "--subject", "demo-alice", "--keys-dir", dir}, &out, &errOut); code != 0 {
		t.Fatalf("token: exit %d: %s", code, errOut.String())
	}
	tok := strings.TrimSpace(out.String())
	out.Reset()
	if code := run(context.Background(), []string{"token", "--jwks", "--keys-dir", dir}, &out, &errOut); code != 0 {
		t.Fatalf("token --jwks: exit %d: %s", code, errOut.String())
	}
	ks, err := auth.ParseJWKS(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Issuer: auth.DefaultIssuer, Audience: auth.DefaultAudience, Keys: ks})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(context.Background(), tok)
	if err != nil || p.Subject != "demo-alice" {
		t.Errorf("Verify = %+v, %v", p, err)
	}
	for _, args := range [][]string{{"token", "--keys-dir", dir}, {"token", "--subject", "demo-alice", "--ttl", "48h", "--keys-dir", dir}} {
		if code := run(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
