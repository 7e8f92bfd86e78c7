package points

import (
	"strconv"
)

// IssueBatch's argument document is the largest the contract decodes (up to
// MaxIssueBatch items), so its common shape is decoded by hand. decodeArgs
// calls fastDecoder.decodeFast only once the document is known to be one
// valid JSON object whose field names all match exactly, without
// duplicates (checkFields); the fast decoder accepts only plain values
// (strings of printable ASCII without escapes, integers, the time through
// time.Time's own UnmarshalJSON) and gives up on anything else (null, an
// escape, a number that is not a plain int64, a bad time), leaving it to
// encoding/json, which then decodes or reports it exactly as before.
type fastDecoder interface {
	decodeFast(data []byte) bool
}

var _ fastDecoder = (*IssueBatchArgs)(nil)

func (a *IssueBatchArgs) decodeFast(data []byte) bool {
	p := fastParser{data: data}
	if !p.byte('{') || !p.key("items") || !p.byte('[') {
		return false
	}
	items := make([]IssueItem, 0, 64)
	if !p.peek(']') {
		for {
			items = append(items, IssueItem{})
			if !p.issueItem(&items[len(items)-1]) {
				return false
			}
			if p.peek(',') {
				p.pos++
				continue
			}
			break
		}
	}
	if !p.byte(']') || !p.byte('}') {
		return false
	}
	p.ws()
	if p.pos != len(p.data) {
		return false
	}
	a.Items = items
	return true
}

type fastParser struct {
	data []byte
	pos  int
}

func (p *fastParser) ws() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// peek skips whitespace and reports whether the next byte is c.
func (p *fastParser) peek(c byte) bool {
	p.ws()
	return p.pos < len(p.data) && p.data[p.pos] == c
}

// byte skips whitespace and consumes c.
func (p *fastParser) byte(c byte) bool {
	if !p.peek(c) {
		return false
	}
	p.pos++
	return true
}

// rawStr consumes a string of printable ASCII other than '"' and '\\' and
// returns its contents: what encoding/json would decode it to.
func (p *fastParser) rawStr() ([]byte, bool) {
	if !p.peek('"') {
		return nil, false
	}
	for i := p.pos + 1; i < len(p.data); i++ {
		switch c := p.data[i]; {
		case c == '"':
			s := p.data[p.pos+1 : i]
			p.pos = i + 1
			return s, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

func (p *fastParser) str(v *string) bool {
	s, ok := p.rawStr()
	if ok {
		*v = string(s)
	}
	return ok
}

// strs consumes an array of plain strings; [] gives an empty, non-nil
// slice, as encoding/json does (null is left to encoding/json).
func (p *fastParser) strs(v *[]string) bool {
	if !p.byte('[') {
		return false
	}
	out := []string{}
	if p.peek(']') {
		p.pos++
		*v = out
		return true
	}
	for {
		var s string
		if !p.str(&s) {
			return false
		}
		out = append(out, s)
		if !p.peek(',') {
			break
		}
		p.pos++
	}
	if !p.byte(']') {
		return false
	}
	*v = out
	return true
}

// key consumes "name" and the colon after it.
func (p *fastParser) key(name string) bool {
	s, ok := p.rawStr()
	return ok && string(s) == name && p.byte(':')
}

// int64 consumes an integer that fits int64 (what encoding/json accepts for
// an int64 without error).
func (p *fastParser) int64(v *int64) bool {
	p.ws()
	start := p.pos
	if p.pos < len(p.data) && p.data[p.pos] == '-' {
		p.pos++
	}
	for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
		p.pos++
	}
	n, err := strconv.ParseInt(string(p.data[start:p.pos]), 10, 64)
	if err != nil {
		return false
	}
	*v = n
	return true
}

// object parses one JSON object, handing each member's name to field, which
// parses the value; false when the object or any member is not plain.
func (p *fastParser) object(field func(name []byte) bool) bool {
	if !p.byte('{') {
		return false
	}
	if p.peek('}') {
		p.pos++
		return true
	}
	for {
		name, ok := p.rawStr()
		if !ok || !p.byte(':') || !field(name) {
			return false
		}
		if !p.peek(',') {
			return p.byte('}')
		}
		p.pos++
	}
}

func (p *fastParser) versionRef(v *VersionRef) bool {
	return p.object(func(name []byte) bool {
		switch string(name) {
		case "id":
			return p.str(&v.ID)
		case "version":
			return p.str(&v.Version)
		}
		return false
	})
}

func (p *fastParser) issueItem(it *IssueItem) bool {
	return p.object(func(name []byte) bool {
		switch string(name) {
		case "itemId":
			return p.str(&it.ItemID)
		case "account":
			return p.str(&it.Account)
		case "points":
			return p.int64(&it.Points)
		case "grams":
			return p.int64(&it.Grams)
		case "category":
			return p.str(&it.Category)
		case "ruleVersion":
			return p.versionRef(&it.RuleVersion)
		case "methodologyVersion":
			return p.versionRef(&it.MethodologyVersion)
		case "profileVersion":
			return p.versionRef(&it.ProfileVersion)
		case "quantificationHash":
			return p.str(&it.QuantificationHash)
		case "claim":
			return p.str(&it.Claim)
		case "subClaims":
			return p.strs(&it.SubClaims)
		case "expiresAt":
			p.ws()
			start := p.pos
			if _, ok := p.rawStr(); !ok {
				return false
			}
			return it.ExpiresAt.UnmarshalJSON(p.data[start:p.pos]) == nil
		}
		return false
	})
}
