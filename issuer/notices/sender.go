package notices

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Message is one notification as handed to a Sender.
type Message struct {
	ID      string `json:"messageId"` // stable across retries: the gateway's idempotency key
	Account string `json:"account"`   // pseudonymous; the gateway knows the device or number
	Channel string `json:"channel"`
	Kind    string `json:"kind"`
	Title   string `json:"title"`
	Body    string `json:"body"`
	// Reminders: the lot, its expiry and points; notices: the change and
	// when it takes effect.
	LotKey      string     `json:"lotKey,omitempty"`
	ExpiresAt   *time.Time `json:"expiresAt,omitempty"`
	Points      int64      `json:"points,omitempty"`
	ChangeID    string     `json:"changeId,omitempty"`
	EffectiveAt *time.Time `json:"effectiveAt,omitempty"`
}

// Receipt is the gateway's acknowledgement of a message.
type Receipt struct {
	ID  string          // the gateway's receipt id
	Raw json.RawMessage // its whole answer, kept as evidence (JSON)
}

// Sender delivers messages. Send returns an error wrapped by Permanent when
// retrying cannot help (the gateway refused the message); any other error
// is retried with backoff.
type Sender interface {
	Send(ctx context.Context, m Message) (Receipt, error)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error { return &permanentError{err} }

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// maxReceiptBytes bounds what we read and keep of a gateway's answer.
const maxReceiptBytes = 16 << 10

// HTTPSender posts messages as JSON to an SMS/push gateway. The gateway
// answers 2xx with a JSON object holding its receipt id ("receiptId", or
// "id"), kept with the whole answer. A 4xx other than 408 and 429 is a
// refusal (permanent); anything else is retried by the outbox.
type HTTPSender struct {
	URL    string
	Client *http.Client // nil: a client with a 10 s timeout
	// Header is added to every request (e.g. the gateway's API key).
	Header http.Header
}

// Send posts m with m.ID as the Idempotency-Key.
func (s *HTTPSender) Send(ctx context.Context, m Message) (Receipt, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return Receipt{}, Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return Receipt{}, Permanent(err)
	}
	for k, v := range s.Header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", m.ID)
	c := s.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return Receipt{}, fmt.Errorf("gateway: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReceiptBytes+1))
	if err != nil {
		return Receipt{}, fmt.Errorf("gateway: reading the answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		err := fmt.Errorf("gateway answered %s: %s", resp.Status, strings.TrimSpace(string(raw[:min(len(raw), 200)])))
		if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			return Receipt{}, Permanent(err)
		}
		return Receipt{}, err
	}
	if len(raw) > maxReceiptBytes {
		return Receipt{}, fmt.Errorf("gateway: the receipt is larger than %d bytes", maxReceiptBytes)
	}
	var r struct {
		ReceiptID string `json:"receiptId"`
		ID        string `json:"id"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || !json.Valid(raw) {
		// Delivered or not? The gateway took it (2xx) but its receipt is
		// unreadable: retry; the idempotency key keeps it one message.
		return Receipt{}, fmt.Errorf("gateway: the answer is not a JSON receipt")
	}
	id := r.ReceiptID
	if id == "" {
		id = r.ID
	}
	if id == "" {
		return Receipt{}, fmt.Errorf("gateway: the answer has no receiptId")
	}
	return Receipt{ID: id, Raw: raw}, nil
}

// LogSender "delivers" by logging, for the demo and development. Its
// receipt says so.
type LogSender struct{ Log *slog.Logger }

// Send logs m.
func (s LogSender) Send(_ context.Context, m Message) (Receipt, error) {
	if s.Log != nil {
		s.Log.Info("notification (log sender)", "id", m.ID, "account", m.Account, "channel", m.Channel, "kind", m.Kind, "title", m.Title, "body", m.Body)
	}
	raw, _ := json.Marshal(map[string]string{"sender": "log", "messageId": m.ID})
	return Receipt{ID: "log:" + m.ID, Raw: raw}, nil
}
