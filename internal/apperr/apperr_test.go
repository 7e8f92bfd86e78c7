package apperr

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCodeAndReasonOf(t *testing.T) {
	t.Parallel()
	base := New(Forbidden, "not_owner", "account %s belongs to another issuer", "a1")
	wrapped := fmt.Errorf("transfer: %w", base)
	tests := []struct {
		err        error
		wantCode   Code
		wantReason string
	}{
		{nil, "", "internal_error"},
		{errors.New("boom"), Internal, "internal_error"},
		{base, Forbidden, "not_owner"},
		{wrapped, Forbidden, "not_owner"},
		{Wrap(errors.New("io"), Unavailable, "ledger_unavailable", "ledger down"), Unavailable, "ledger_unavailable"},
	}
	for _, tc := range tests {
		if got := CodeOf(tc.err); got != tc.wantCode {
			t.Errorf("CodeOf(%v) = %q, want %q", tc.err, got, tc.wantCode)
		}
		if got := ReasonOf(tc.err); got != tc.wantReason {
			t.Errorf("ReasonOf(%v) = %q, want %q", tc.err, got, tc.wantReason)
		}
	}
}

func TestWrapKeepsCauseOutOfDetail(t *testing.T) {
	t.Parallel()
	cause := errors.New("password=hunter2")
	e := Wrap(cause, Internal, "db", "database failed")
	if !errors.Is(e, cause) {
		t.Fatal("Wrap lost its cause")
	}
	if e.Detail != "database failed" {
		t.Fatalf("Detail = %q", e.Detail)
	}
	if got := EncodeWire(e); got != "gp1|internal|db|database failed" {
		t.Fatalf("EncodeWire leaks or mangles: %q", got)
	}
}

func TestWireRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   error
		want *Error
	}{
		{New(Invalid, "points_not_positive", "points must be > 0"), &Error{Code: Invalid, Reason: "points_not_positive", Detail: "points must be > 0"}},
		{New(Conflict, "x", "a|b\nc"), &Error{Code: Conflict, Reason: "x", Detail: "a|b c"}},
		{errors.New("plain"), &Error{Code: Internal, Reason: "internal_error", Detail: "plain"}},
	}
	for _, tc := range tests {
		// Fabric prefixes its own text to a chaincode error message.
		msg := "endorsement failure: chaincode response 500, " + EncodeWire(tc.in)
		got, ok := DecodeWire(msg)
		if !ok {
			t.Fatalf("DecodeWire(%q) found nothing", msg)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
	}
	if _, ok := DecodeWire("some fabric error"); ok {
		t.Error("DecodeWire found an error in plain text")
	}
	if _, ok := DecodeWire("gp1|only"); ok {
		t.Error("DecodeWire accepted a truncated encoding")
	}
}
