package webhook_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/webhook"
)

// The worked example of the Standard Webhooks specification.
const (
	specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTS     = 1614265330
	specBody   = `{"test": 2432232314}`
	specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

var t0 = time.Unix(specTS, 0)

func mustSecret(tb testing.TB) []byte {
	tb.Helper()
	s, err := webhook.NewSecret()
	if err != nil {
		tb.Fatal(err)
	}
	b, err := webhook.ParseSecret(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func mustKeyPair(tb testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	tb.Helper()
	pub, priv, err := webhook.NewKeyPair()
	if err != nil {
		tb.Fatal(err)
	}
	p, err := webhook.ParsePublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	k, err := webhook.ParsePrivateKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	return p, k
}

func reasonOf(err error) string {
	if err == nil {
		return ""
	}
	return apperr.ReasonOf(err)
}

func TestSpecExample(t *testing.T) {
	t.Parallel()
	secret, err := webhook.ParseSecret(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := webhook.HMACSigner(secret).Sign(specID, t0, []byte(specBody)); got != specSig {
		t.Errorf("Sign = %q, want the specification's %q", got, specSig)
	}
	h := http.Header{}
	h.Set(webhook.HeaderID, specID)
	h.Set(webhook.HeaderTimestamp, "1614265330")
	h.Set(webhook.HeaderSignature, specSig)
	k, err := webhook.Verify([]webhook.Key{{ID: "spec", Secret: secret}}, h, []byte(specBody), t0, 0)
	if err != nil || k.ID != "spec" {
		t.Fatalf("Verify = %q, %v; want spec, nil", k.ID, err)
	}
}

// TestSignedContent pins the signed content independently of the package:
// an HMAC computed here by hand over id "." timestamp "." body.
func TestSignedContent(t *testing.T) {
	t.Parallel()
	secret := bytes.Repeat([]byte{7}, 32)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("evt_1.1700000000.hello"))
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	if got := webhook.HMACSigner(secret).Sign("evt_1", time.Unix(1700000000, 999), []byte("hello")); got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	secret := mustSecret(t)
	pub, priv := mustKeyPair(t)
	body := []byte(`{"points":12}`)
	tests := []struct {
		name   string
		signer webhook.Signer
		prefix string
	}{
		{"v1", webhook.HMACSigner(secret), "v1,"},
		{"v1a", webhook.Ed25519Signer(priv), "v1a,"},
	}
	keys := []webhook.Key{{ID: "hmac", Secret: secret}, {ID: "ed", Public: pub}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := webhook.Headers(tt.signer, "msg_1", t0, body)
			if s := h.Get(webhook.HeaderSignature); !strings.HasPrefix(s, tt.prefix) {
				t.Errorf("signature %q lacks prefix %q", s, tt.prefix)
			}
			if _, err := webhook.Verify(keys, h, body, t0, 0); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

// TestRotation: during a rotation the receiver trusts the old and the new
// key, and the sender may sign with either or both.
func TestRotation(t *testing.T) {
	t.Parallel()
	oldS, newS := mustSecret(t), mustSecret(t)
	pub, priv := mustKeyPair(t)
	keys := []webhook.Key{{ID: "old", Secret: oldS}, {ID: "new", Secret: newS}, {ID: "ed", Public: pub}}
	body := []byte("b")
	sign := func(ss ...webhook.Signer) http.Header {
		h := webhook.Headers(ss[0], "msg_r", t0, body)
		var parts []string
		for _, s := range ss {
			parts = append(parts, s.Sign("msg_r", t0, body))
		}
		h.Set(webhook.HeaderSignature, strings.Join(parts, " "))
		return h
	}
	tests := []struct {
		name string
		h    http.Header
		want string
	}{
		{"old only", sign(webhook.HMACSigner(oldS)), "old"},
		{"new only", sign(webhook.HMACSigner(newS)), "new"},
		{"both", sign(webhook.HMACSigner(newS), webhook.HMACSigner(oldS)), "old"},
		{"unknown secret then new", sign(webhook.HMACSigner(mustSecret(t)), webhook.HMACSigner(newS)), "new"},
		{"v1a among v1", sign(webhook.HMACSigner(mustSecret(t)), webhook.Ed25519Signer(priv)), "ed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := webhook.Verify(keys, tt.h, body, t0, 0)
			if err != nil || k.ID != tt.want {
				t.Fatalf("Verify = %q, %v; want %q", k.ID, err, tt.want)
			}
		})
	}
}

func TestVerifyFailures(t *testing.T) {
	t.Parallel()
	secret := mustSecret(t)
	pub, priv := mustKeyPair(t)
	otherPub, _ := mustKeyPair(t)
	body := []byte(`{"a":1}`)
	good := func() http.Header { return webhook.Headers(webhook.HMACSigner(secret), "msg_1", t0, body) }
	with := func(name, value string) http.Header {
		h := good()
		h.Set(name, value)
		return h
	}
	without := func(name string) http.Header {
		h := good()
		h.Del(name)
		return h
	}
	hmacKeys := []webhook.Key{{ID: "s", Secret: secret}}
	edKeys := []webhook.Key{{ID: "p", Public: pub}}
	v1Payload := strings.TrimPrefix(good().Get(webhook.HeaderSignature), "v1,")
	edSig := webhook.Ed25519Signer(priv).Sign("msg_1", t0, body)

	tests := []struct {
		name  string
		keys  []webhook.Key
		h     http.Header
		body  []byte
		now   time.Time
		tol   time.Duration
		want  string
		extra string // when the test expects success, the key id
	}{
		{name: "ok", keys: hmacKeys, h: good(), body: body, now: t0, extra: "s"},
		{name: "tampered body", keys: hmacKeys, h: good(), body: []byte(`{"a":2}`), now: t0, want: webhook.ReasonInvalid},
		{name: "empty body", keys: hmacKeys, h: good(), body: nil, now: t0, want: webhook.ReasonInvalid},
		{name: "wrong secret", keys: []webhook.Key{{Secret: mustSecret(t)}}, h: good(), body: body, now: t0, want: webhook.ReasonInvalid},
		{name: "no keys", keys: nil, h: good(), body: body, now: t0, want: webhook.ReasonInvalid},
		{name: "other id", keys: hmacKeys, h: with(webhook.HeaderID, "msg_2"), body: body, now: t0, want: webhook.ReasonInvalid},
		{name: "other timestamp", keys: hmacKeys, h: with(webhook.HeaderTimestamp, "1614265331"), body: body, now: t0, want: webhook.ReasonInvalid},
		{name: "v1 as v1a", keys: append(edKeys, hmacKeys[0]), h: with(webhook.HeaderSignature, "v1a,"+v1Payload), body: body, now: t0, want: webhook.ReasonInvalid},
		{name: "v1a as v1", keys: append(edKeys, hmacKeys[0]), h: with(webhook.HeaderSignature, "v1,"+strings.TrimPrefix(edSig, "v1a,")), body: body, now: t0, want: webhook.ReasonInvalid},
		{name: "v1 against public key only", keys: edKeys, h: good(), body: body, now: t0, want: webhook.ReasonInvalid},
		{name: "v1a ok", keys: edKeys, h: with(webhook.HeaderSignature, edSig), body: body, now: t0, extra: "p"},
		{name: "v1a wrong key", keys: []webhook.Key{{Public: otherPub}}, h: with(webhook.HeaderSignature, edSig), body: body, now: t0, want: webhook.ReasonInvalid},
		{name: "v1a tampered body", keys: edKeys, h: with(webhook.HeaderSignature, edSig), body: []byte("x"), now: t0, want: webhook.ReasonInvalid},
		{name: "unknown version only", keys: hmacKeys, h: with(webhook.HeaderSignature, "v2,"+v1Payload), body: body, now: t0, want: webhook.ReasonInvalid},
		{name: "unknown version ignored", keys: hmacKeys, h: with(webhook.HeaderSignature, "v9,xyz v1,"+v1Payload), body: body, now: t0, extra: "s"},
		{name: "payload not base64", keys: hmacKeys, h: with(webhook.HeaderSignature, "v1,!!!"), body: body, now: t0, want: webhook.ReasonInvalid},
		{name: "unpadded payload", keys: hmacKeys, h: with(webhook.HeaderSignature, "v1,"+strings.TrimRight(v1Payload, "=")), body: body, now: t0, want: webhook.ReasonInvalid},

		// Clock: exactly tolerance either way passes, one second more fails.
		{name: "past edge", keys: hmacKeys, h: good(), body: body, now: t0.Add(webhook.DefaultTolerance), extra: "s"},
		{name: "future edge", keys: hmacKeys, h: good(), body: body, now: t0.Add(-webhook.DefaultTolerance), extra: "s"},
		{name: "stale", keys: hmacKeys, h: good(), body: body, now: t0.Add(webhook.DefaultTolerance + time.Second), want: webhook.ReasonStale},
		{name: "future", keys: hmacKeys, h: good(), body: body, now: t0.Add(-webhook.DefaultTolerance - time.Second), want: webhook.ReasonStale},
		{name: "custom tolerance edge", keys: hmacKeys, h: good(), body: body, now: t0.Add(time.Minute), tol: time.Minute, extra: "s"},
		{name: "custom tolerance stale", keys: hmacKeys, h: good(), body: body, now: t0.Add(time.Minute + time.Nanosecond), tol: time.Minute, want: webhook.ReasonStale},
		{name: "stale and wrong", keys: hmacKeys, h: good(), body: []byte("x"), now: t0.Add(time.Hour), want: webhook.ReasonStale},
		{name: "timestamp zero", keys: hmacKeys, h: with(webhook.HeaderTimestamp, "0"), body: body, now: t0, want: webhook.ReasonStale},
		{name: "timestamp max int64", keys: hmacKeys, h: with(webhook.HeaderTimestamp, "9223372036854775807"), body: body, now: t0, want: webhook.ReasonStale},

		// Missing.
		{name: "no id", keys: hmacKeys, h: without(webhook.HeaderID), body: body, now: t0, want: webhook.ReasonMissing},
		{name: "no timestamp", keys: hmacKeys, h: without(webhook.HeaderTimestamp), body: body, now: t0, want: webhook.ReasonMissing},
		{name: "no signature", keys: hmacKeys, h: without(webhook.HeaderSignature), body: body, now: t0, want: webhook.ReasonMissing},
		{name: "empty signature", keys: hmacKeys, h: with(webhook.HeaderSignature, ""), body: body, now: t0, want: webhook.ReasonMissing},
		{name: "blank signature", keys: hmacKeys, h: with(webhook.HeaderSignature, "   "), body: body, now: t0, want: webhook.ReasonMissing},
		{name: "no headers", keys: hmacKeys, h: http.Header{}, body: body, now: t0, want: webhook.ReasonMissing},

		// Malformed.
		{name: "timestamp with sign", keys: hmacKeys, h: with(webhook.HeaderTimestamp, "+1614265330"), body: body, now: t0, want: webhook.ReasonMalformed},
		{name: "negative timestamp", keys: hmacKeys, h: with(webhook.HeaderTimestamp, "-1"), body: body, now: t0, want: webhook.ReasonMalformed},
		{name: "timestamp in ms overflow", keys: hmacKeys, h: with(webhook.HeaderTimestamp, "99999999999999999999"), body: body, now: t0, want: webhook.ReasonMalformed},
		{name: "fractional timestamp", keys: hmacKeys, h: with(webhook.HeaderTimestamp, "1614265330.5"), body: body, now: t0, want: webhook.ReasonMalformed},
		{name: "RFC 3339 timestamp", keys: hmacKeys, h: with(webhook.HeaderTimestamp, "2021-02-25T15:02:10Z"), body: body, now: t0, want: webhook.ReasonMalformed},
		{name: "id with dot", keys: hmacKeys, h: with(webhook.HeaderID, "msg.1"), body: body, now: t0, want: webhook.ReasonMalformed},
		{name: "id with space", keys: hmacKeys, h: with(webhook.HeaderID, "msg 1"), body: body, now: t0, want: webhook.ReasonMalformed},
		{name: "id non-ASCII", keys: hmacKeys, h: with(webhook.HeaderID, "msg_é"), body: body, now: t0, want: webhook.ReasonMalformed},
		{name: "id 257 bytes", keys: hmacKeys, h: with(webhook.HeaderID, strings.Repeat("a", 257)), body: body, now: t0, want: webhook.ReasonMalformed},
		{name: "id 256 bytes", keys: hmacKeys, h: with(webhook.HeaderID, strings.Repeat("a", 256)), body: body, now: t0, want: webhook.ReasonInvalid},
		{name: "element without comma", keys: hmacKeys, h: with(webhook.HeaderSignature, "v1"+v1Payload), body: body, now: t0, want: webhook.ReasonMalformed},
		{name: "element without version", keys: hmacKeys, h: with(webhook.HeaderSignature, ","+v1Payload), body: body, now: t0, want: webhook.ReasonMalformed},
		{name: "element without payload", keys: hmacKeys, h: with(webhook.HeaderSignature, "v1,"), body: body, now: t0, want: webhook.ReasonMalformed},
		{name: "11 elements", keys: hmacKeys, h: with(webhook.HeaderSignature, strings.Repeat("v2,x ", 10)+"v1,"+v1Payload), body: body, now: t0, want: webhook.ReasonMalformed},
		{name: "10 elements", keys: hmacKeys, h: with(webhook.HeaderSignature, strings.Repeat("v2,x ", 9)+"v1,"+v1Payload), body: body, now: t0, extra: "s"},
		{name: "header over 4 KB", keys: hmacKeys, h: with(webhook.HeaderSignature, "v1,"+v1Payload+" v2,"+strings.Repeat("A", 4096)), body: body, now: t0, want: webhook.ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := webhook.Verify(tt.keys, tt.h, tt.body, tt.now, tt.tol)
			if got := reasonOf(err); got != tt.want {
				t.Fatalf("Verify reason = %q (%v), want %q", got, err, tt.want)
			}
			if err != nil {
				if c := apperr.CodeOf(err); c != apperr.Unauthorized {
					t.Errorf("code = %q, want %q", c, apperr.Unauthorized)
				}
				if d := apperr.As(err).Detail; strings.Contains(d, v1Payload) || strings.Contains(d, base64.StdEncoding.EncodeToString(secret)) {
					t.Errorf("detail %q echoes a signature or secret", d)
				}
				return
			}
			if k.ID != tt.extra {
				t.Errorf("matched key %q, want %q", k.ID, tt.extra)
			}
		})
	}
}

func TestVerifyBadKeys(t *testing.T) {
	t.Parallel()
	secret := mustSecret(t)
	pub, _ := mustKeyPair(t)
	h := webhook.Headers(webhook.HMACSigner(secret), "m", t0, nil)
	tests := []struct {
		name string
		key  webhook.Key
	}{
		{"neither", webhook.Key{ID: "x"}},
		{"both", webhook.Key{Secret: secret, Public: pub}},
		{"short public key", webhook.Key{Public: pub[:31]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := webhook.Verify([]webhook.Key{{Secret: secret}, tt.key}, h, nil, t0, 0)
			if apperr.CodeOf(err) != apperr.Internal || reasonOf(err) != "webhook_key_invalid" {
				t.Fatalf("Verify = %v, want internal/webhook_key_invalid", err)
			}
		})
	}
}

func TestParseKeys(t *testing.T) {
	t.Parallel()
	enc := base64.StdEncoding.EncodeToString
	pubS, privS, err := webhook.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := webhook.ParsePrivateKey(privS)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := webhook.ParsePublicKey(pubS)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Fatal("NewKeyPair: public key does not belong to the private key")
	}
	mismatched := append(bytes.Clone(priv[:32]), make([]byte, 32)...)
	secretText := "whsec_" + enc(bytes.Repeat([]byte{1}, 65))

	tests := []struct {
		name    string
		parse   func(string) error
		in      string
		wantErr bool
	}{
		{"secret spec", parseSecret, specSecret, false},
		{"secret 24 bytes", parseSecret, "whsec_" + enc(make([]byte, 24)), false},
		{"secret 64 bytes", parseSecret, "whsec_" + enc(make([]byte, 64)), false},
		{"secret 23 bytes", parseSecret, "whsec_" + enc(make([]byte, 23)), true},
		{"secret 65 bytes", parseSecret, secretText, true},
		{"secret no prefix", parseSecret, enc(make([]byte, 32)), true},
		{"secret public prefix", parseSecret, "whpk_" + enc(make([]byte, 32)), true},
		{"secret bad base64", parseSecret, "whsec_***", true},
		{"secret empty", parseSecret, "", true},
		{"public ok", parsePublic, pubS, false},
		{"public 31 bytes", parsePublic, "whpk_" + enc(make([]byte, 31)), true},
		{"public secret prefix", parsePublic, "whsec_" + enc(make([]byte, 32)), true},
		{"private ok", parsePrivate, privS, false},
		{"private seed only", parsePrivate, "whsk_" + enc(priv.Seed()), true},
		{"private mismatched public half", parsePrivate, "whsk_" + enc(mismatched), true},
		{"private as public", parsePublic, privS, true},
		{"public as private", parsePrivate, pubS, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.parse(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil {
				return
			}
			if apperr.CodeOf(err) != apperr.Invalid {
				t.Errorf("code = %q, want invalid", apperr.CodeOf(err))
			}
			if _, rest, _ := strings.Cut(tt.in, "_"); len(rest) > 8 && strings.Contains(err.Error(), rest) {
				t.Errorf("error %q echoes the key", err)
			}
		})
	}
}

func parseSecret(s string) error  { _, err := webhook.ParseSecret(s); return err }
func parsePublic(s string) error  { _, err := webhook.ParsePublicKey(s); return err }
func parsePrivate(s string) error { _, err := webhook.ParsePrivateKey(s); return err }

func TestNewSecretIsRandom(t *testing.T) {
	t.Parallel()
	a, b := mustSecret(t), mustSecret(t)
	if bytes.Equal(a, b) || len(a) < webhook.MinSecretLen {
		t.Fatalf("secrets %x and %x", a, b)
	}
}

// TestSignerCopiesKey: a caller reusing its buffer must not change the key
// a Signer signs with.
func TestSignerCopiesKey(t *testing.T) {
	t.Parallel()
	secret := mustSecret(t)
	s := webhook.HMACSigner(secret)
	want := s.Sign("m", t0, nil)
	clear(secret)
	if got := s.Sign("m", t0, nil); got != want {
		t.Fatal("HMACSigner shares the caller's secret buffer")
	}
}

func Example() {
	secret, _ := webhook.ParseSecret(specSecret)
	body := []byte(specBody)
	h := webhook.Headers(webhook.HMACSigner(secret), specID, t0, body)

	k, err := webhook.Verify([]webhook.Key{{ID: "2021-02", Secret: secret}}, h, body, t0.Add(time.Minute), webhook.DefaultTolerance)
	if err != nil {
		panic(err)
	}
	fmt.Println(k.ID, h.Get(webhook.HeaderSignature))
	// Output: 2021-02 v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

// TestCryptoSigner: a key held behind crypto.Signer (a key manager) signs
// v1a elements that Verify accepts with its public key.
func TestCryptoSigner(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	body := []byte(`{"type":"action.issued"}`)
	h := webhook.Headers(webhook.CryptoSigner(priv), "cb_1", now, body)
	if _, err := webhook.Verify([]webhook.Key{{ID: "ours", Public: pub}}, h, body, now, 0); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if _, err := webhook.Verify([]webhook.Key{{ID: "ours", Public: pub}}, h, []byte("{}"), now, 0); err == nil {
		t.Fatal("a signature over another body verified")
	}
}
