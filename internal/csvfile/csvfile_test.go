package csvfile_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/csvfile"
)

var spec = csvfile.Spec{
	Header:         []string{"a", "b", "c"},
	Trailer:        "TRAILER",
	TrailerFields:  2,
	MaxBytes:       1 << 16,
	MaxLines:       100,
	MaxRecordBytes: 64,
}

// problem is a Problem without the detail, which is for humans.
type problem struct {
	Line          int
	Field, Reason string
}

func problems(r *csvfile.Report) []problem {
	var ps []problem
	for _, p := range r.Problems {
		ps = append(ps, problem{p.Line, p.Field, p.Reason})
	}
	return ps
}

func TestRead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		spec    *csvfile.Spec
		records []csvfile.Record
		trailer *csvfile.Record
		want    []problem
	}{
		{
			name:    "valid",
			in:      "a,b,c\n1,2,3\n4,5,6\nTRAILER,2\n",
			records: []csvfile.Record{{Line: 2, Fields: []string{"1", "2", "3"}}, {Line: 3, Fields: []string{"4", "5", "6"}}},
			trailer: &csvfile.Record{Line: 4, Fields: []string{"TRAILER", "2"}},
		},
		{
			name:    "BOM, CRLF, no final newline",
			in:      "\uFEFFa,b,c\r\n1,2,3\r\nTRAILER,1",
			records: []csvfile.Record{{Line: 2, Fields: []string{"1", "2", "3"}}},
			trailer: &csvfile.Record{Line: 3, Fields: []string{"TRAILER", "1"}},
		},
		{
			name: "quoted comma and newlines keep physical lines",
			in:   "a,b,c\n\"x,y\",\"two\nlines\",3\n\"\"\"q\"\"\",\"three\r\nmore\nlines\",z\n\nlast,1,2\nTRAILER,3\n",
			records: []csvfile.Record{
				{Line: 2, Fields: []string{"x,y", "two\nlines", "3"}},
				{Line: 4, Fields: []string{`"q"`, "three\nmore\nlines", "z"}},
				{Line: 8, Fields: []string{"last", "1", "2"}},
			},
			trailer: &csvfile.Record{Line: 9, Fields: []string{"TRAILER", "3"}},
		},
		{
			name:    "no trailer in the format",
			in:      "a,b,c\n1,2,3\n",
			spec:    &csvfile.Spec{Header: spec.Header, MaxBytes: 100, MaxLines: 10},
			records: []csvfile.Record{{Line: 2, Fields: []string{"1", "2", "3"}}},
		},
		{
			name: "empty",
			in:   "",
			want: []problem{{1, "header", "header_missing"}},
		},
		{
			name: "bad header",
			in:   "a,c,b\n1,2,3\nTRAILER,1\n",
			want: []problem{{1, "header", "header_mismatch"}},
		},
		{
			name: "header after a blank line is on line 2",
			in:   "\nA,b,c\n",
			want: []problem{{2, "header", "header_mismatch"}},
		},
		{
			name: "BOM twice",
			in:   "\uFEFF\uFEFFa,b,c\n",
			want: []problem{{1, "header", "header_mismatch"}},
		},
		{
			name:    "column count",
			in:      "a,b,c\n1,2\n1,2,3,4\n1,2,3\nTRAILER,1\n",
			records: []csvfile.Record{{Line: 4, Fields: []string{"1", "2", "3"}}},
			trailer: &csvfile.Record{Line: 5, Fields: []string{"TRAILER", "1"}},
			want:    []problem{{2, "record", "column_count"}, {3, "record", "column_count"}},
		},
		{
			name:    "csv syntax",
			in:      "a,b,c\n1,x\"y,3\n1,2,3\nTRAILER,1\n",
			records: []csvfile.Record{{Line: 3, Fields: []string{"1", "2", "3"}}},
			trailer: &csvfile.Record{Line: 4, Fields: []string{"TRAILER", "1"}},
			want:    []problem{{2, "record", "csv_syntax"}},
		},
		{
			name: "unclosed quote reported on its first line",
			in:   "a,b,c\n1,2,3\n1,\"2,3\nTRAILER,1\n",
			records: []csvfile.Record{
				{Line: 2, Fields: []string{"1", "2", "3"}},
			},
			want: []problem{{3, "record", "csv_syntax"}, {4, "trailer", "trailer_missing"}},
		},
		{
			name:    "record too long",
			in:      "a,b,c\n1,2," + strings.Repeat("x", 70) + "\n1,2,3\nTRAILER,1\n",
			records: []csvfile.Record{{Line: 3, Fields: []string{"1", "2", "3"}}},
			trailer: &csvfile.Record{Line: 4, Fields: []string{"TRAILER", "1"}},
			want:    []problem{{2, "record", "record_too_long"}},
		},
		{
			name:    "missing trailer",
			in:      "a,b,c\n1,2,3\n\n",
			records: []csvfile.Record{{Line: 2, Fields: []string{"1", "2", "3"}}},
			want:    []problem{{3, "trailer", "trailer_missing"}},
		},
		{
			name:    "trailer not last",
			in:      "a,b,c\nTRAILER,1\n1,2,3\nTRAILER,1\n",
			trailer: &csvfile.Record{Line: 2, Fields: []string{"TRAILER", "1"}},
			want:    []problem{{3, "record", "trailer_not_last"}, {4, "trailer", "trailer_not_last"}},
		},
		{
			name: "trailer field count",
			in:   "a,b,c\n1,2,3\nTRAILER,1,2\n",
			records: []csvfile.Record{
				{Line: 2, Fields: []string{"1", "2", "3"}},
			},
			want: []problem{{3, "trailer", "column_count"}},
		},
		{
			name: "invalid UTF-8 reported per line",
			in:   "a,b,c\n1,\xff,3\n1,2,3\n\xc3(,2,3\nTRAILER,3\n",
			want: []problem{{2, "encoding", "utf8"}, {4, "encoding", "utf8"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := spec
			if tt.spec != nil {
				s = *tt.spec
			}
			f, rep, err := csvfile.Read(strings.NewReader(tt.in), s)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if diff := cmp.Diff(tt.want, problems(rep)); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s\n%v", diff, rep.Problems)
			}
			if diff := cmp.Diff(tt.records, f.Records); diff != "" {
				t.Errorf("records mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.trailer, f.Trailer); diff != "" {
				t.Errorf("trailer mismatch (-want +got):\n%s", diff)
			}
			sum := sha256.Sum256([]byte(tt.in))
			if got, want := f.SHA256, hex.EncodeToString(sum[:]); got != want {
				t.Errorf("SHA256 = %s, want %s", got, want)
			}
			if (rep.Err() == nil) != (len(tt.want) == 0) {
				t.Errorf("Err() = %v with %d problems", rep.Err(), len(tt.want))
			}
		})
	}
}

func TestReadBounds(t *testing.T) {
	t.Parallel()
	s := spec
	s.MaxBytes = 20
	_, _, err := csvfile.Read(strings.NewReader("a,b,c\n"+strings.Repeat("1,2,3\n", 3)), s)
	if e := apperr.As(err); e == nil || e.Code != apperr.TooLarge || e.Reason != "file_too_large" {
		t.Errorf("Read of a big file: err = %v, want too_large/file_too_large", err)
	}
	s = spec
	s.MaxLines = 3
	_, _, err = csvfile.Read(strings.NewReader("a,b,c\n1,2,3\n1,2,3\nTRAILER,2"), s)
	if e := apperr.As(err); e == nil || e.Code != apperr.TooLarge || e.Reason != "file_too_many_lines" {
		t.Errorf("Read of a long file: err = %v, want too_large/file_too_many_lines", err)
	}
	_, _, err = csvfile.Read(iotest.ErrReader(errors.New("boom")), spec)
	if err == nil || apperr.As(err) != nil {
		t.Errorf("Read of a failing reader: err = %v, want a plain error", err)
	}
	if _, _, err := csvfile.Read(strings.NewReader(""), csvfile.Spec{}); err == nil {
		t.Error("Read with an empty Spec: want an error")
	}
}

func TestReportErr(t *testing.T) {
	t.Parallel()
	var r csvfile.Report
	if err := r.Err(); err != nil {
		t.Fatalf("empty report: Err() = %v, want nil", err)
	}
	r.Add(12, "mcc", "format", "bad")
	r.Add(3, "", "x", "y")
	r.Add(12, "time", "required", "missing")
	e := apperr.As(r.Err())
	if e == nil {
		t.Fatal("Err() is not an *apperr.Error")
	}
	want := &apperr.Error{
		Code:   apperr.Invalid,
		Reason: "file_invalid",
		Detail: "3 problems in 2 lines; nothing was applied",
		Fields: []apperr.FieldError{
			{Field: "line 3", Reason: "x", Detail: "y"},
			{Field: "line 12: mcc", Reason: "format", Detail: "bad"},
			{Field: "line 12: time", Reason: "required", Detail: "missing"},
		},
	}
	if diff := cmp.Diff(want, e); diff != "" {
		t.Errorf("Err() mismatch (-want +got):\n%s", diff)
	}
}

func TestReportCap(t *testing.T) {
	t.Parallel()
	var r csvfile.Report
	for i := range csvfile.MaxProblems + 5 {
		r.Add(i+2, "a", "x", "y")
	}
	e := apperr.As(r.Err())
	if got := len(e.Fields); got != csvfile.MaxProblems {
		t.Errorf("len(Fields) = %d, want %d", got, csvfile.MaxProblems)
	}
	want := fmt.Sprintf("%d problems in %d lines; nothing was applied; the first %d are listed, 5 omitted",
		csvfile.MaxProblems+5, csvfile.MaxProblems+5, csvfile.MaxProblems)
	if e.Detail != want {
		t.Errorf("Detail = %q, want %q", e.Detail, want)
	}
}

func TestReportInt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		want   int64
		reason string
	}{
		{"0", 0, ""},
		{"42", 42, ""},
		{"-7", -7, ""},
		{"007", 7, ""},
		{"", 0, "required"},
		{"-", 0, "number"},
		{"+1", 0, "number"},
		{" 1", 0, "number"},
		{"1e3", 0, "number"},
		{"1_000", 0, "number"},
		{"١", 0, "number"},
		{"101", 0, "range"},
		{"-11", 0, "range"},
		{"99999999999999999999", 0, "range"},
	}
	for _, tt := range tests {
		var r csvfile.Report
		got, ok := r.Int(5, "n", tt.in, -10, 100)
		var reason string
		if len(r.Problems) > 0 {
			reason = r.Problems[0].Reason
		}
		if got != tt.want || ok != (tt.reason == "") || reason != tt.reason {
			t.Errorf("Int(%q) = %d, %v, problem %q; want %d, problem %q", tt.in, got, ok, reason, tt.want, tt.reason)
		}
	}
}

func TestAddFieldErrors(t *testing.T) {
	t.Parallel()
	var r csvfile.Report
	r.AddFieldErrors(7, []apperr.FieldError{
		{Field: "amountFen", Reason: "min"},
		{Field: "mcc", Reason: "format"},
		{Field: "lineItems[0].model", Reason: "required"},
	}, map[string]string{"amountFen": "amount_fen", "mcc": "mcc"}, map[string]bool{"amount_fen": true})
	want := []problem{{7, "mcc", "format"}, {7, "lineItems[0].model", "required"}}
	if diff := cmp.Diff(want, problems(&r)); diff != "" {
		t.Errorf("problems mismatch (-want +got):\n%s", diff)
	}
}

// FuzzRead: Read never panics, and every record it returns has the header's
// column count and a line inside the file.
func FuzzRead(f *testing.F) {
	for _, s := range []string{
		"a,b,c\n1,2,3\nTRAILER,1\n",
		"\uFEFFa,b,c\r\n\"x\ny\",2,3\r\nTRAILER,1",
		"a,b,c\n1,\"2\n",
		"a,b,c\nTRAILER,1\n1,2,3\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		file, rep, err := csvfile.Read(bytes.NewReader(in), spec)
		if err != nil {
			if apperr.As(err) == nil {
				t.Fatalf("Read: %v", err)
			}
			return
		}
		for _, r := range file.Records {
			if len(r.Fields) != len(spec.Header) || r.Line < 1 || r.Line > file.Lines {
				t.Fatalf("bad record %+v in a file of %d lines", r, file.Lines)
			}
		}
		for _, p := range rep.Problems {
			if p.Line < 1 || p.Line > max(file.Lines, 1) {
				t.Fatalf("problem %+v outside a file of %d lines", p, file.Lines)
			}
		}
	})
}
