package labels_test

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/csvfile"
	"github.com/greenpoints/greenpoints/issuer/labels"
)

const header = "model,brand,category,grade,label_value,capacity_w,standard,registration_no\n"

func TestNormalizeModel(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"KFR-35GW/BP3DN1Y", "KFR-35GW/BP3DN1Y"},
		{"  kfr-35gw/bp3dn1y ", "KFR-35GW/BP3DN1Y"},
		{"ＫＦＲ－３５ＧＷ／ｂｐ３", "KFR-35GW/BP3"},
		{"BCD 470\tWGHFD\u3000(E)", "BCD470WGHFD(E)"},
		{"（Ｅ）", "(E)"},
		{"海尔 BCD", "海尔BCD"},
		{"ǆ", "ǆ"}, // non-ASCII letters are left alone
		{"", ""},
		{" \u3000\t", ""},
	}
	for _, tt := range tests {
		if got := labels.NormalizeModel(tt.in); got != tt.want {
			t.Errorf("NormalizeModel(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func valid() labels.Entry {
	return labels.Entry{
		Model: "KFR-35GW/NhAe1BAj", Brand: "格力", Category: labels.CategoryAirConditioner, Grade: 1,
		LabelValueMilli: 5300, CapacityW: 3500, Standard: "GB 21455-2019", RegistrationNo: "CEL-A-2023-001001",
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*labels.Entry)
		want   []string // "field reason"
	}{
		{"valid", func(*labels.Entry) {}, nil},
		{"valid fridge", func(e *labels.Entry) {
			e.Category, e.CapacityW, e.Standard = labels.CategoryRefrigerator, 0, "GB 12021.2-2015"
		}, nil},
		{"valid GB/T", func(e *labels.Entry) { e.Standard = "GB/T 7725-2022" }, nil},
		{"all missing", func(e *labels.Entry) { *e = labels.Entry{} }, []string{
			"model required", "brand required", "category required", "grade out_of_range",
			"labelValueMilli out_of_range", "standard required", "registrationNo required",
		}},
		{"white space model", func(e *labels.Entry) { e.Model = " \u3000" }, []string{"model required"}},
		{"long model", func(e *labels.Entry) { e.Model = strings.Repeat("型", labels.MaxModelLen+1) }, []string{"model too_long"}},
		{"control in brand", func(e *labels.Entry) { e.Brand = "a\nb" }, []string{"brand invalid_chars"}},
		{"invalid UTF-8 in brand", func(e *labels.Entry) { e.Brand = "a\xffb" }, []string{"brand invalid_chars"}},
		{"unknown category", func(e *labels.Entry) { e.Category = "television"; e.CapacityW = 0 }, []string{"category unknown_category"}},
		{"grade 6", func(e *labels.Entry) { e.Grade = 6 }, []string{"grade out_of_range"}},
		{"label value too big", func(e *labels.Entry) { e.LabelValueMilli = labels.MaxLabelValueMilli + 1 }, []string{"labelValueMilli out_of_range"}},
		{"AC without capacity", func(e *labels.Entry) { e.CapacityW = 0 }, []string{"capacityW out_of_range"}},
		{"AC too big", func(e *labels.Entry) { e.CapacityW = labels.MaxCapacityW + 1 }, []string{"capacityW out_of_range"}},
		{"washer with capacity", func(e *labels.Entry) { e.Category = labels.CategoryWashingMachine }, []string{"capacityW not_applicable"}},
		{"bad standards", func(e *labels.Entry) { e.Standard = "GB21455-2019" }, []string{"standard format"}},
		{"standard without year", func(e *labels.Entry) { e.Standard = "GB 21455" }, []string{"standard format"}},
		{"standard with empty part", func(e *labels.Entry) { e.Standard = "GB 12021.-2015" }, []string{"standard format"}},
		{"registration no", func(e *labels.Entry) { e.RegistrationNo = "CEL 1" }, []string{"registrationNo format"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := valid()
			tt.modify(&e)
			var got []string
			for _, fe := range e.Validate() {
				got = append(got, fe.Field+" "+fe.Reason)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSample(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/sample.csv")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := labels.Parse(bytes.NewReader(b), labels.Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	count := map[string]int{}
	for _, e := range entries {
		count[e.Category]++
	}
	if len(entries) < 10 || len(count) != 3 {
		t.Errorf("sample has %d entries in categories %v, want 10+ across three", len(entries), count)
	}
	want := labels.Entry{
		Model: "BCD-470WGHFD5DSMU1", Brand: "海尔", Category: labels.CategoryRefrigerator, Grade: 1,
		LabelValueMilli: 790, Standard: "GB 12021.2-2015", RegistrationNo: "CEL-R-2023-000101",
	}
	if diff := cmp.Diff(want, entries[0]); diff != "" {
		t.Errorf("first entry mismatch (-want +got):\n%s", diff)
	}
}

func TestParseLabelValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64 // 0: rejected
	}{
		{"0.85", 850}, {"4.5", 4500}, {"5", 5000}, {"0.001", 1}, {"1000", 1_000_000}, {"007.250", 7250},
		{"", 0}, {".5", 0}, {"5.", 0}, {"0.0005", 0}, {"-1", 0}, {"+1", 0}, {"1e3", 0}, {"1,5", 0},
		{" 1", 0}, {"1.2.3", 0}, {"0", 0}, {"0.000", 0}, {"1000.001", 0}, {"999999999999999999", 0},
	}
	for _, tt := range tests {
		in := header + fmt.Sprintf("M1,B,refrigerator,1,%q,,GB 12021.2-2015,R1\n", tt.in)
		entries, err := labels.Parse(strings.NewReader(in), labels.Options{})
		switch {
		case tt.want == 0 && err == nil:
			t.Errorf("label_value %q: accepted as %d", tt.in, entries[0].LabelValueMilli)
		case tt.want != 0 && err != nil:
			t.Errorf("label_value %q: %v", tt.in, err)
		case tt.want != 0 && entries[0].LabelValueMilli != tt.want:
			t.Errorf("label_value %q = %d milli, want %d", tt.in, entries[0].LabelValueMilli, tt.want)
		}
	}
}

func TestParseProblems(t *testing.T) {
	t.Parallel()
	const ok = "KFR-35GW,格力,air_conditioner,1,5.3,3500,GB 21455-2019,R1\n"
	tests := []struct {
		name string
		in   string
		want []apperr.FieldError
	}{
		{
			name: "bad header",
			in:   "model,brand,category,grade,label_value,standard,registration_no\n" + ok,
			want: []apperr.FieldError{{Field: "line 1: header", Reason: "header_mismatch"}},
		},
		{
			name: "wrong column count",
			in:   header + ok + "a,b,c\n",
			want: []apperr.FieldError{{Field: "line 3: record", Reason: "column_count"}},
		},
		{
			name: "bad numbers",
			in: header +
				"M1,B,refrigerator,one,0.8,,GB 12021.2-2015,R1\n" +
				"M2,B,refrigerator,1,0.8x,,GB 12021.2-2015,R2\n" +
				"M3,B,air_conditioner,1,5,3.5kW,GB 21455-2019,R3\n",
			want: []apperr.FieldError{
				{Field: "line 2: grade", Reason: "number"},
				{Field: "line 3: label_value", Reason: "decimal"},
				{Field: "line 4: capacity_w", Reason: "number"},
			},
		},
		{
			name: "validate problems map to columns",
			in:   header + ",B,fridge,0,0.8,100,GB,R 1\n",
			want: []apperr.FieldError{
				{Field: "line 2: model", Reason: "required"},
				{Field: "line 2: category", Reason: "unknown_category"},
				{Field: "line 2: grade", Reason: "out_of_range"},
				{Field: "line 2: capacity_w", Reason: "not_applicable"},
				{Field: "line 2: standard", Reason: "format"},
				{Field: "line 2: registration_no", Reason: "format"},
			},
		},
		{
			name: "duplicate after normalisation, with quoted fields",
			in: header + ok +
				"\"x\",\"B\",\"refrigerator\",\"1\",\"0.8\",\"\",\"GB 12021.2-2015\",\"R2\"\n" +
				"ｋｆｒ－35gw ,\"格力\",air_conditioner,2,4.5,3500,GB 21455-2019,R3\n",
			want: []apperr.FieldError{{Field: "line 4: model", Reason: "duplicate"}},
		},
		{
			name: "same model, other brand is fine; trailer-like rows are data",
			in:   header + ok + "KFR-35GW,美的,air_conditioner,1,5.3,3500,GB 21455-2019,R2\nTRAILER,1,2\n",
			want: []apperr.FieldError{{Field: "line 4: record", Reason: "column_count"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			entries, err := labels.Parse(strings.NewReader(tt.in), labels.Options{})
			if entries != nil {
				t.Errorf("Parse returned %d entries with an error", len(entries))
			}
			e := apperr.As(err)
			if e == nil || e.Reason != csvfile.ReasonFileInvalid {
				t.Fatalf("err = %v, want file_invalid", err)
			}
			var got []apperr.FieldError
			for _, f := range e.Fields {
				got = append(got, apperr.FieldError{Field: f.Field, Reason: f.Reason})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s\nerr: %v", diff, err)
			}
		})
	}
}

func TestParseBOMAndCRLF(t *testing.T) {
	t.Parallel()
	in := "\uFEFF" + strings.ReplaceAll(header+"\"KFR-35GW, \"\"new\"\"\",格力,air_conditioner,1,5.3,3500,GB 21455-2019,R1\n", "\n", "\r\n")
	entries, err := labels.Parse(strings.NewReader(in), labels.Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := entries[0].Model, `KFR-35GW, "new"`; len(entries) != 1 || got != want {
		t.Errorf("Parse = %+v, want one entry with model %q", entries, want)
	}
}

func TestParseBounds(t *testing.T) {
	t.Parallel()
	in := header + "KFR-35GW,格力,air_conditioner,1,5.3,3500,GB 21455-2019,R1\n"
	_, err := labels.Parse(strings.NewReader(in), labels.Options{MaxLines: 1})
	if e := apperr.As(err); e == nil || e.Code != apperr.TooLarge {
		t.Errorf("err = %v, want too_large", err)
	}
}

// FuzzParse: Parse never panics and either returns entries that all pass
// Validate with unique normalised (brand, model), or an *apperr.Error.
func FuzzParse(f *testing.F) {
	sample, err := os.ReadFile("testdata/sample.csv")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample)
	f.Add([]byte(header + "ｋｆｒ,B,air_conditioner,1,0.001,1,GB/T 1-2000,R\n"))
	f.Add([]byte(header + "M,B,refrigerator,5,1000.000,,GB 1.2-2000,R\nm ,B,refrigerator,5,1,,GB 1-2000,R\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		entries, err := labels.Parse(bytes.NewReader(in), labels.Options{MaxLines: 1000, MaxBytes: 1 << 20})
		if err != nil {
			if entries != nil || apperr.As(err) == nil {
				t.Fatalf("Parse = %d entries, %v; want nil and an *apperr.Error", len(entries), err)
			}
			return
		}
		type key struct{ brand, model string }
		seen := map[key]bool{}
		for _, e := range entries {
			if fes := e.Validate(); len(fes) != 0 {
				t.Fatalf("entry %+v fails Validate: %v", e, fes)
			}
			k := key{labels.NormalizeModel(e.Brand), labels.NormalizeModel(e.Model)}
			if seen[k] {
				t.Fatalf("duplicate %v", k)
			}
			seen[k] = true
			if n := labels.NormalizeModel(k.model); n != k.model {
				t.Fatalf("NormalizeModel is not idempotent: %q -> %q", k.model, n)
			}
		}
	})
}

func FuzzNormalizeModel(f *testing.F) {
	f.Add("ＫＦＲ－３５ＧＷ ａ")
	f.Fuzz(func(t *testing.T, s string) {
		n := labels.NormalizeModel(s)
		if labels.NormalizeModel(n) != n {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, n, labels.NormalizeModel(n))
		}
		if strings.ContainsAny(n, " \t\n\u3000abcdefghijklmnopqrstuvwxyz") {
			t.Fatalf("NormalizeModel(%q) = %q keeps a space or a lower-case letter", s, n)
		}
	})
}
