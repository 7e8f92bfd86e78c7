// Package partnerclient is a partner's side of the intake API: it signs
// requests per the Standard Webhooks convention and sends them. The CLI
// ('greenpoints partner send/import'), the load generator and the
// end-to-end tests use it, so they exercise exactly what a partner does.
package partnerclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/greenpoints/greenpoints/internal/webhook"
)

// Client sends signed requests for one partner.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	Partner string
	Signer  webhook.Signer
	HTTP    *http.Client     // nil means a client with a 30 s timeout
	Now     func() time.Time // nil means time.Now (tests sign stale requests with it)
}

// Response is a raw API response.
type Response struct {
	Status   int
	Header   http.Header
	Body     []byte
	Replayed bool // the server returned the stored response of this webhook id
}

// NewMessageID returns a fresh webhook id.
func NewMessageID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "msg_" + hex.EncodeToString(b)
}

// Post signs body under a fresh webhook id and POSTs it to the partner's
// route (e.g. "card-transactions", "settlement-files?businessDay=2026-11-22").
func (c *Client) Post(ctx context.Context, route, contentType string, body []byte) (*Response, error) {
	return c.Send(ctx, http.MethodPost, route, contentType, NewMessageID(), body)
}

// Get signs and sends a GET of the partner's route (e.g.
// "card-transactions/tx-1").
func (c *Client) Get(ctx context.Context, route string) (*Response, error) {
	return c.Send(ctx, http.MethodGet, route, "", NewMessageID(), nil)
}

// Send signs and sends one request under webhook id msgID.
func (c *Client) Send(ctx context.Context, method, route, contentType, msgID string, body []byte) (*Response, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	return c.SendSigned(ctx, method, route, contentType, c.Sign(msgID, now(), body), body)
}

// Sign returns the Standard Webhooks headers of body under webhook id msgID,
// timestamped at: for SendSigned, when a caller signs ahead of sending (a
// load generator keeping its signing out of the measured window).
func (c *Client) Sign(msgID string, at time.Time, body []byte) http.Header {
	return webhook.Headers(c.Signer, msgID, at, body)
}

// SendSigned sends one request with headers from Sign.
func (c *Client) SendSigned(ctx context.Context, method, route, contentType string, signed http.Header, body []byte) (*Response, error) {
	u := strings.TrimRight(c.BaseURL, "/") + "/v1/partners/" + url.PathEscape(c.Partner) + "/" + route
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range signed {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b, Replayed: resp.Header.Get("Idempotent-Replayed") == "true"}, nil
}

// WaitActions polls GET route (a transaction's or trip's status) every
// `every` until every green action it lists has status, and returns that
// status document; tick, when not nil, runs after each poll that was not
// yet done (a progress spinner). It gives up when ctx ends.
func (c *Client) WaitActions(ctx context.Context, route, status string, every time.Duration, tick func()) ([]byte, error) {
	for {
		r, err := c.Get(ctx, route)
		if err != nil {
			return nil, err
		}
		if r.Status == http.StatusOK {
			var st struct{ Actions []struct{ Status string } }
			if err := json.Unmarshal(r.Body, &st); err != nil {
				return nil, fmt.Errorf("decode %s: %w", route, err)
			}
			done := len(st.Actions) > 0
			for _, a := range st.Actions {
				done = done && a.Status == status
			}
			if done {
				return r.Body, nil
			}
		}
		if tick != nil {
			tick()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s never reached %s (last HTTP %d %s): %w", route, status, r.Status, r.Body, ctx.Err())
		case <-time.After(every):
		}
	}
}
