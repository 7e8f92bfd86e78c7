package points

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// Lots are the records an issuance writes and reports most, so they have a
// hand-written encoder: byte for byte what encoding/json writes for the
// struct (TestLotEncodingMatchesEncodingJSON), several times faster.

// MarshalJSON implements json.Marshaler.
func (l Lot) MarshalJSON() ([]byte, error) {
	for _, t := range []time.Time{l.IssuedAt, l.ExpiresAt} {
		if y := t.Year(); y < 0 || y > 9999 {
			return nil, errors.New("Time.MarshalJSON: year outside of range [0,9999]")
		}
	}
	return l.appendJSON(make([]byte, 0, 768)), nil
}

func (l *Lot) appendJSON(b []byte) []byte {
	b = append(b, `{"key":`...)
	b = appendJSONString(b, l.Key)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, l.ID)
	b = append(b, `,"account":`...)
	b = appendJSONString(b, l.Account)
	b = append(b, `,"issuer":`...)
	b = appendJSONString(b, l.Issuer)
	b = append(b, `,"amount":`...)
	b = strconv.AppendInt(b, l.Amount, 10)
	b = append(b, `,"remaining":`...)
	b = strconv.AppendInt(b, l.Remaining, 10)
	b = append(b, `,"grams":`...)
	b = strconv.AppendInt(b, l.Grams, 10)
	b = append(b, `,"gramsRemaining":`...)
	b = strconv.AppendInt(b, l.GramsRemaining, 10)
	b = append(b, `,"issuedAt":`...)
	b = appendJSONTime(b, l.IssuedAt)
	b = append(b, `,"expiresAt":`...)
	b = appendJSONTime(b, l.ExpiresAt)
	b = append(b, `,"category":`...)
	b = appendJSONString(b, l.Category)
	b = append(b, `,"ruleVersion":`...)
	b = appendVersionRef(b, l.RuleVersion)
	b = append(b, `,"methodologyVersion":`...)
	b = appendVersionRef(b, l.MethodologyVersion)
	b = append(b, `,"profileVersion":`...)
	b = appendVersionRef(b, l.ProfileVersion)
	b = append(b, `,"quantificationHash":`...)
	b = appendJSONString(b, l.QuantificationHash)
	b = append(b, `,"claim":`...)
	b = appendJSONString(b, l.Claim)
	b = append(b, `,"itemId":`...)
	b = appendJSONString(b, l.ItemID)
	b = append(b, `,"txId":`...)
	b = appendJSONString(b, l.TxID)
	b = append(b, `,"sourceLot":`...)
	b = appendJSONString(b, l.SourceLot)
	b = append(b, `,"children":`...)
	if l.Children == nil {
		b = append(b, "null"...)
	} else {
		b = appendJSONStrings(b, l.Children)
	}
	b = append(b, `,"donated":`...)
	b = strconv.AppendInt(b, l.Donated, 10)
	b = append(b, `,"transferredOut":`...)
	b = strconv.AppendInt(b, l.TransferredOut, 10)
	b = append(b, `,"reversed":`...)
	b = strconv.AppendInt(b, l.Reversed, 10)
	b = append(b, `,"expired":`...)
	b = strconv.AppendInt(b, l.Expired, 10)
	if l.Extension != nil { // rare, so encoding/json; its times are validated ones and cannot fail to encode
		raw, err := json.Marshal(l.Extension)
		if err == nil {
			b = append(b, `,"extension":`...)
			b = append(b, raw...)
		}
	}
	return append(b, '}')
}

func appendVersionRef(b []byte, v VersionRef) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, v.ID)
	b = append(b, `,"version":`...)
	b = appendJSONString(b, v.Version)
	return append(b, '}')
}

// appendJSONString appends s as encoding/json would: strings of plain
// printable ASCII (every id, key and hash) directly, anything else through
// encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONStrings appends a non-nil []string as encoding/json would.
func appendJSONStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendJSONTime appends t as time.Time.MarshalJSON does (the caller has
// checked the year is within 0..9999).
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// Claims, item results, changes and the event are the rest of what an
// issuance writes and reports; they too are encoded by hand, falling back
// to encoding/json for the payloads other transactions carry.

func checkYear(ts ...time.Time) error {
	for _, t := range ts {
		if y := t.Year(); y < 0 || y > 9999 {
			return errors.New("Time.MarshalJSON: year outside of range [0,9999]")
		}
	}
	return nil
}

// MarshalJSON implements json.Marshaler.
func (c Claim) MarshalJSON() ([]byte, error) { return c.appendJSON(make([]byte, 0, 512)) }

func (c *Claim) appendJSON(b []byte) ([]byte, error) {
	if err := checkYear(c.IssuedAt); err != nil {
		return nil, err
	}
	b = append(b, `{"claim":`...)
	b = appendJSONString(b, c.Claim)
	b = append(b, `,"issuer":`...)
	b = appendJSONString(b, c.Issuer)
	b = append(b, `,"itemId":`...)
	b = appendJSONString(b, c.ItemID)
	b = append(b, `,"account":`...)
	b = appendJSONString(b, c.Account)
	b = append(b, `,"lotKey":`...)
	b = appendJSONString(b, c.LotKey)
	b = append(b, `,"lotId":`...)
	b = appendJSONString(b, c.LotID)
	b = append(b, `,"points":`...)
	b = strconv.AppendInt(b, c.Points, 10)
	b = append(b, `,"grams":`...)
	b = strconv.AppendInt(b, c.Grams, 10)
	b = append(b, `,"debtSettled":`...)
	b = strconv.AppendInt(b, c.DebtSettled, 10)
	b = append(b, `,"issuedAt":`...)
	b = appendJSONTime(b, c.IssuedAt)
	b = append(b, `,"txId":`...)
	b = appendJSONString(b, c.TxID)
	if c.Parent != "" {
		b = append(b, `,"parent":`...)
		b = appendJSONString(b, c.Parent)
	}
	if c.SubReversed != 0 {
		b = append(b, `,"subReversed":`...)
		b = strconv.AppendInt(b, c.SubReversed, 10)
	}
	if c.SubExpired != 0 {
		b = append(b, `,"subExpired":`...)
		b = strconv.AppendInt(b, c.SubExpired, 10)
	}
	if c.Reversal != nil {
		r, err := json.Marshal(c.Reversal)
		if err != nil {
			return nil, err
		}
		b = append(b, `,"reversal":`...)
		b = append(b, r...)
	}
	return append(b, '}'), nil
}

// MarshalJSON implements json.Marshaler.
func (r ItemResult) MarshalJSON() ([]byte, error) { return r.appendJSON(make([]byte, 0, 256)), nil }

func (r *ItemResult) appendJSON(b []byte) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, int64(r.Index), 10)
	b = append(b, `,"itemId":`...)
	b = appendJSONString(b, r.ItemID)
	b = append(b, `,"claim":`...)
	b = appendJSONString(b, r.Claim)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, r.Status)
	if r.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, r.Reason)
	}
	if r.LotID != "" {
		b = append(b, `,"lotId":`...)
		b = appendJSONString(b, r.LotID)
	}
	if r.LotKey != "" {
		b = append(b, `,"lotKey":`...)
		b = appendJSONString(b, r.LotKey)
	}
	if r.DebtSettled != 0 {
		b = append(b, `,"debtSettled":`...)
		b = strconv.AppendInt(b, r.DebtSettled, 10)
	}
	if len(r.TakenSubClaims) > 0 {
		b = append(b, `,"takenSubClaims":`...)
		b = appendJSONStrings(b, r.TakenSubClaims)
	}
	return append(b, '}')
}

// MarshalJSON implements json.Marshaler.
func (c Change) MarshalJSON() ([]byte, error) { return c.appendJSON(make([]byte, 0, 1024)) }

func (c *Change) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, c.Type)
	for _, f := range []struct{ name, v string }{{"cause", c.Cause}, {"action", c.Action}, {"requestHash", c.RequestHash}} {
		if f.v != "" {
			b = append(b, `,"`...)
			b = append(b, f.name...)
			b = append(b, `":`...)
			b = appendJSONString(b, f.v)
		}
	}
	field := func(name string) {
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":`...)
	}
	other := func(name string, v any) error {
		raw, err := json.Marshal(v)
		if err != nil {
			return err
		}
		field(name)
		b = append(b, raw...)
		return nil
	}
	var err error
	if c.Regulator != nil {
		err = other("regulator", c.Regulator)
	}
	if err == nil && c.Member != nil {
		err = other("member", c.Member)
	}
	if err == nil && c.Anchor != nil {
		err = other("anchor", c.Anchor)
	}
	if err == nil && c.Notice != nil {
		err = other("notice", c.Notice)
	}
	if err == nil && c.Account != nil {
		err = other("account", c.Account)
	}
	if err == nil && c.Item != nil {
		field("item")
		b = c.Item.appendJSON(b)
	}
	if err == nil && c.Claim != nil {
		field("claim")
		b, err = c.Claim.appendJSON(b)
	}
	if err == nil && c.Lot != nil {
		if err = checkYear(c.Lot.IssuedAt, c.Lot.ExpiresAt); err == nil {
			field("lot")
			b = c.Lot.appendJSON(b)
		}
	}
	if err == nil && c.Debit != nil {
		err = other("debit", c.Debit)
	}
	if err == nil && c.Debt != nil {
		err = other("debt", c.Debt)
	}
	if err == nil && c.Transfer != nil {
		err = other("transfer", c.Transfer)
	}
	if err == nil && c.Receipt != nil {
		err = other("receipt", c.Receipt)
	}
	if err == nil && c.Family != nil {
		err = other("family", c.Family)
	}
	if err == nil && c.Subject != "" {
		field("subject")
		b = appendJSONString(b, c.Subject)
	}
	if err == nil && c.Charity != nil {
		err = other("charity", c.Charity)
	}
	if err == nil && c.Project != nil {
		err = other("project", c.Project)
	}
	if err == nil && c.Extension != nil {
		err = other("extension", c.Extension)
	}
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// MarshalJSON implements json.Marshaler.
func (e Event) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 256+len(e.Changes)*600)
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(e.V), 10)
	b = append(b, `,"txId":`...)
	b = appendJSONString(b, e.TxID)
	b = append(b, `,"function":`...)
	b = appendJSONString(b, e.Function)
	b = append(b, `,"time":`...)
	b = appendJSONString(b, e.Time)
	b = append(b, `,"caller":`...)
	b = appendJSONString(b, e.Caller)
	b = append(b, `,"changes":`...)
	if e.Changes == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range e.Changes {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = e.Changes[i].appendJSON(b); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// MarshalJSON implements json.Marshaler. Without it LotView would inherit
// Lot's and lose Due and Held.
func (v LotView) MarshalJSON() ([]byte, error) {
	if err := checkYear(v.IssuedAt, v.ExpiresAt); err != nil {
		return nil, err
	}
	b := v.Lot.appendJSON(make([]byte, 0, 800))
	b = append(b[:len(b)-1], `,"due":`...)
	b = strconv.AppendBool(b, v.Due)
	b = append(b, `,"held":`...)
	b = strconv.AppendInt(b, v.Held, 10)
	return append(b, '}'), nil
}

// MarshalJSON implements json.Marshaler. An IssueBatch result is the largest
// result the contract returns (one entry per item); encoding it directly
// skips encoding/json's reflection and its re-validation of every
// ItemResult's MarshalJSON output.
func (r IssueBatchResult) MarshalJSON() ([]byte, error) {
	return r.appendJSON(make([]byte, 0, 128+len(r.Results)*160)), nil
}

func (r *IssueBatchResult) appendJSON(b []byte) []byte {
	b = append(b, `{"results":`...)
	if r.Results == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range r.Results {
			if i > 0 {
				b = append(b, ',')
			}
			b = r.Results[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	b = append(b, `,"issued":`...)
	b = strconv.AppendInt(b, int64(r.Issued), 10)
	b = append(b, `,"alreadyIssued":`...)
	b = strconv.AppendInt(b, int64(r.AlreadyIssued), 10)
	b = append(b, `,"claimedElsewhere":`...)
	b = strconv.AppendInt(b, int64(r.ClaimedElsewhere), 10)
	b = append(b, `,"rejected":`...)
	b = strconv.AppendInt(b, int64(r.Rejected), 10)
	return append(b, '}')
}

// Accounts are read by every issuance (each item names its own), so their
// canonical encoding, the one encoding/json writes for Account, is decoded
// by hand; anything else goes through encoding/json.

// decodeAccount decodes raw into a when raw is exactly Account's canonical
// encoding with plain printable-ASCII strings (no escapes), giving the same
// result as encoding/json. ok is false when raw is anything else, for
// encoding/json to decode.
func decodeAccount(raw []byte, a *Account) (ok bool) {
	p := accountParser{data: raw}
	var out Account
	if !p.lit(`{"id":`) || !p.str(&out.ID) ||
		!p.lit(`,"kind":`) || !p.str(&out.Kind) ||
		!p.lit(`,"issuer":`) || !p.str(&out.Issuer) ||
		!p.lit(`,"openedAt":`) {
		return false
	}
	start := p.pos
	var ts string
	if !p.str(&ts) || out.OpenedAt.UnmarshalJSON(raw[start:p.pos]) != nil {
		return false
	}
	if !p.lit(`,"txId":`) || !p.str(&out.TxID) || !p.lit(`}`) || p.pos != len(raw) {
		return false
	}
	*a = out
	return true
}

type accountParser struct {
	data []byte
	pos  int
}

func (p *accountParser) lit(s string) bool {
	if len(p.data)-p.pos < len(s) || string(p.data[p.pos:p.pos+len(s)]) != s {
		return false
	}
	p.pos += len(s)
	return true
}

// str reads a JSON string made of printable ASCII other than '"' and '\\',
// which encoding/json would decode to exactly its bytes.
func (p *accountParser) str(v *string) bool {
	if p.pos >= len(p.data) || p.data[p.pos] != '"' {
		return false
	}
	for i := p.pos + 1; i < len(p.data); i++ {
		switch c := p.data[i]; {
		case c == '"':
			*v = string(p.data[p.pos+1 : i])
			p.pos = i + 1
			return true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return false
		}
	}
	return false
}
