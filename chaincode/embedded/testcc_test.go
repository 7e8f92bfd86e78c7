package embedded

import (
	"encoding/json"
	"fmt"

	"github.com/greenpoints/greenpoints/chaincode/stub"
	"github.com/greenpoints/greenpoints/internal/apperr"
)

// testCC is a tiny contract that pins the backend's semantics independently
// of the points contract. Its one function, "ops" (and "query", the same
// but declared read-only), runs a list of stub operations given as JSON and
// returns what each one saw.
type testCC struct{}

type op struct {
	Op       string   `json:"op"`
	Key      string   `json:"key,omitempty"`
	Keys     []string `json:"keys,omitempty"`
	Value    *string  `json:"value,omitempty"`
	Start    string   `json:"start,omitempty"`
	End      string   `json:"end,omitempty"`
	Limit    int      `json:"limit,omitempty"`
	Bookmark string   `json:"bookmark,omitempty"`
	Name     string   `json:"name,omitempty"`
	Code     string   `json:"code,omitempty"`
	Reason   string   `json:"reason,omitempty"`
}

type kv struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type hist struct {
	TxID   string `json:"txid"`
	Value  string `json:"value"`
	Delete bool   `json:"delete"`
}

type opResult struct {
	Value    *string   `json:"value,omitempty"`
	Values   []*string `json:"values,omitempty"`
	KVs      []kv      `json:"kvs,omitempty"`
	Bookmark string    `json:"bookmark,omitempty"`
	History  []hist    `json:"history,omitempty"`
	TxID     string    `json:"txid,omitempty"`
	TS       string    `json:"ts,omitempty"`
}

func (testCC) ReadOnly(fn string) bool { return fn == "query" }

func (testCC) Invoke(s stub.Stub, fn string, args []byte) ([]byte, error) {
	if fn != "ops" && fn != "query" {
		return nil, apperr.New(apperr.NotFound, "unknown_function", "no function %q", fn)
	}
	var ops []op
	if err := json.Unmarshal(args, &ops); err != nil {
		return nil, apperr.Wrap(err, apperr.Invalid, "bad_args", "arguments are not a list of ops")
	}
	out := make([]opResult, len(ops))
	for i, o := range ops {
		r, err := runOp(s, o)
		if err != nil {
			return nil, fmt.Errorf("op %d (%s): %w", i, o.Op, err)
		}
		out[i] = r
	}
	return json.Marshal(out)
}

func strp(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

func runOp(s stub.Stub, o op) (opResult, error) {
	var r opResult
	switch o.Op {
	case "get":
		v, err := s.GetState(o.Key)
		r.Value = strp(v)
		return r, err
	case "multi":
		vs, err := s.GetMultipleStates(o.Keys...)
		for _, v := range vs {
			r.Values = append(r.Values, strp(v))
		}
		return r, err
	case "put":
		v := ""
		if o.Value != nil {
			v = *o.Value
		}
		return r, s.PutState(o.Key, []byte(v))
	case "del":
		return r, s.DelState(o.Key)
	case "range":
		kvs, err := s.GetStateByRange(o.Start, o.End, o.Limit)
		for _, e := range kvs {
			r.KVs = append(r.KVs, kv{e.Key, string(e.Value)})
		}
		return r, err
	case "page":
		kvs, bm, err := s.GetStateByRangeWithPagination(o.Start, o.End, int32(o.Limit), o.Bookmark)
		for _, e := range kvs {
			r.KVs = append(r.KVs, kv{e.Key, string(e.Value)})
		}
		r.Bookmark = bm
		return r, err
	case "history":
		hs, err := s.GetHistoryForKey(o.Key)
		for _, h := range hs {
			r.History = append(r.History, hist{TxID: h.TxID, Value: string(h.Value), Delete: h.IsDelete})
		}
		return r, err
	case "event":
		v := ""
		if o.Value != nil {
			v = *o.Value
		}
		return r, s.SetEvent(o.Name, []byte(v))
	case "tx":
		r.TxID = s.TxID()
		r.TS = s.TxTimestamp().Format("2006-01-02T15:04:05.000000Z07:00")
		return r, nil
	case "fail":
		if o.Code == "" {
			return r, fmt.Errorf("plain failure: %s", o.Reason)
		}
		return r, apperr.New(apperr.Code(o.Code), o.Reason, "failed on purpose")
	case "panic":
		panic("on purpose")
	}
	return r, fmt.Errorf("unknown op %q", o.Op)
}

// Op constructors, to keep tests short.

func get(k string) op { return op{Op: "get", Key: k} }

func multi(ks ...string) op { return op{Op: "multi", Keys: ks} }

func put(k, v string) op { return op{Op: "put", Key: k, Value: &v} }

func del(k string) op { return op{Op: "del", Key: k} }

func rng(start, end string, limit int) op {
	return op{Op: "range", Start: start, End: end, Limit: limit}
}

func page(start, end string, size int, bookmark string) op {
	return op{Op: "page", Start: start, End: end, Limit: size, Bookmark: bookmark}
}

func history(k string) op { return op{Op: "history", Key: k} }

func event(name, payload string) op { return op{Op: "event", Name: name, Value: &payload} }
