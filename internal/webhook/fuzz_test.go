package webhook_test

import (
	"bytes"
	"crypto/ed25519"
	"net/http"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/webhook"
)

// FuzzVerify: arbitrary headers and bodies never panic and never fail with
// anything but the documented reasons; a signature made for one body never
// verifies another.
func FuzzVerify(f *testing.F) {
	secret := bytes.Repeat([]byte{0x5a}, 32)
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x17}, ed25519.SeedSize))
	keys := []webhook.Key{
		{ID: "hmac", Secret: secret},
		{ID: "ed", Public: priv.Public().(ed25519.PublicKey)},
	}
	signers := []webhook.Signer{webhook.HMACSigner(secret), webhook.Ed25519Signer(priv)}

	f.Add(specID, "1614265330", specSig, []byte(specBody), []byte(specBody))
	f.Add("msg_1", "1614265330", "v1,AAAA v1a,BBBB", []byte("a"), []byte("b"))
	f.Add("", "", "", []byte{}, []byte("x"))
	f.Add("m", "+1", ",", []byte("{}"), []byte("{}"))
	f.Add("a.b", "1614265330 ", "v1 v1a, v2,=", []byte("\x00"), []byte("\x00\x01"))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body, other []byte) {
		h := http.Header{}
		h.Set(webhook.HeaderID, id)
		h.Set(webhook.HeaderTimestamp, ts)
		h.Set(webhook.HeaderSignature, sig)
		_, err := webhook.Verify(keys, h, body, t0, 0)
		if err != nil {
			switch r := apperr.ReasonOf(err); r {
			case webhook.ReasonMissing, webhook.ReasonMalformed, webhook.ReasonStale, webhook.ReasonInvalid:
			default:
				t.Fatalf("unexpected reason %q: %v", r, err)
			}
		}

		// Sign body properly (a fixed id: the fuzzed one may be refused
		// before the signature is looked at), then present it with other.
		for _, s := range signers {
			good := webhook.Headers(s, "msg_fuzz", t0, body)
			if _, err := webhook.Verify(keys, good, body, t0, 0); err != nil {
				t.Fatalf("own signature does not verify: %v", err)
			}
			if bytes.Equal(body, other) {
				continue
			}
			if _, err := webhook.Verify(keys, good, other, t0, 0); apperr.ReasonOf(err) != webhook.ReasonInvalid {
				t.Fatalf("signature for %q on body %q: %v", body, other, err)
			}
			// The fuzzed signature list next to a good one for another
			// body: still invalid, unless the fuzzer forged a MAC.
			mixed := good.Clone()
			mixed.Set(webhook.HeaderSignature, good.Get(webhook.HeaderSignature)+" "+sig)
			if _, err := webhook.Verify(keys, mixed, other, t0, time.Minute); err == nil {
				t.Fatalf("fuzzed list %q with a signature for %q verifies %q", sig, body, other)
			}
		}
	})
}
