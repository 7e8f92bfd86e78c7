package quantify

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/greenpoints/greenpoints/internal/apperr"
)

var at2026 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func mustFind(t *testing.T, category string) Methodology {
	t.Helper()
	m, err := Published().Find(category, "CN", at2026)
	if err != nil {
		t.Fatalf("Find(%s): %v", category, err)
	}
	return m
}

func TestTransitKnownAnswers(t *testing.T) {
	t.Parallel()
	m := mustFind(t, CategoryTransit)
	// Expected values by hand: metro 272-61 = 211 g/pkm, bus 272-81 = 191 g/pkm.
	tests := []struct {
		name       string
		in         TransitInput
		wantGrams  int64
		wantSource string
	}{
		{"10 km metro", TransitInput{Mode: ModeMetro, DistanceMeters: 10_000}, 2110, DistanceMeasured},
		{"10 km bus", TransitInput{Mode: ModeBus, DistanceMeters: 10_000}, 1910, DistanceMeasured},
		{"1234 m metro rounds down", TransitInput{Mode: ModeMetro, DistanceMeters: 1234}, 260, DistanceMeasured}, // 260.374
		{"1 m bus rounds to 0", TransitInput{Mode: ModeBus, DistanceMeters: 1}, 0, DistanceMeasured},
		{"max distance metro", TransitInput{Mode: ModeMetro, DistanceMeters: 150_000}, 31_650, DistanceMeasured},
		{"unknown distance uses operator average", TransitInput{Mode: ModeMetro, OperatorAverageMeters: 8_500, AverageSource: "Metro annual report 2025"}, 1793, DistanceOperatorAverage}, // 1793.5
		{"measured distance ignores average", TransitInput{Mode: ModeBus, DistanceMeters: 5_000, OperatorAverageMeters: 8_500, AverageSource: "x"}, 955, DistanceMeasured},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, err := m.Transit(tc.in)
			if err != nil {
				t.Fatalf("Transit: %v", err)
			}
			if rec.Grams != tc.wantGrams || rec.DistanceSource != tc.wantSource {
				t.Errorf("Transit(%+v) = %d g (%s), want %d g (%s)", tc.in, rec.Grams, rec.DistanceSource, tc.wantGrams, tc.wantSource)
			}
			if rec.Methodology != TransitCNUrban2026 || rec.MethodologySHA256 != m.SHA256() {
				t.Errorf("record names %v %s", rec.Methodology, rec.MethodologySHA256)
			}
			if !strings.Contains(string(rec.Canonical()), `"distanceSource":"`+tc.wantSource+`"`) {
				t.Errorf("canonical record lacks the distance source: %s", rec.Canonical())
			}
		})
	}
}

func TestTransitRejects(t *testing.T) {
	t.Parallel()
	m := mustFind(t, CategoryTransit)
	tests := []struct {
		name   string
		in     TransitInput
		reason string
	}{
		{"intercity rail", TransitInput{Mode: "intercity_rail", DistanceMeters: 10_000}, "intercity_mode"},
		{"coach", TransitInput{Mode: "coach", DistanceMeters: 10_000}, "intercity_mode"},
		{"empty mode", TransitInput{DistanceMeters: 10_000}, "mode_required"},
		{"negative distance", TransitInput{Mode: ModeMetro, DistanceMeters: -1}, "distance_out_of_range"},
		{"huge distance", TransitInput{Mode: ModeMetro, DistanceMeters: math.MaxInt64}, "distance_out_of_range"},
		{"just over max", TransitInput{Mode: ModeMetro, DistanceMeters: 150_001}, "distance_out_of_range"},
		{"unknown distance, no average", TransitInput{Mode: ModeBus, AverageSource: "x"}, "average_distance_missing"},
		{"unknown distance, negative average", TransitInput{Mode: ModeBus, OperatorAverageMeters: -5, AverageSource: "x"}, "average_distance_missing"},
		{"unknown distance, huge average", TransitInput{Mode: ModeBus, OperatorAverageMeters: math.MaxInt64, AverageSource: "x"}, "average_distance_missing"},
		{"unknown distance, no source", TransitInput{Mode: ModeBus, OperatorAverageMeters: 5_000}, "average_source_missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := m.Transit(tc.in)
			if apperr.CodeOf(err) != apperr.Invalid || apperr.ReasonOf(err) != tc.reason {
				t.Errorf("Transit(%+v) error = %v, want invalid/%s", tc.in, err, tc.reason)
			}
		})
	}
	if _, err := mustFind(t, CategoryAppliance).Transit(TransitInput{Mode: ModeBus, DistanceMeters: 1}); apperr.ReasonOf(err) != "wrong_methodology" {
		t.Errorf("Transit on the appliance methodology: %v", err)
	}
}

func TestApplianceKnownAnswers(t *testing.T) {
	t.Parallel()
	m := mustFind(t, CategoryAppliance)
	// Hand computations, grid 536 600 g/MWh:
	//  fridge 0.500 vs 0.800 kWh/24h: 300 Wh x 365 = 109 500 Wh/yr x 0.5366 g/Wh x 10 yr = 587 577 g
	//  washer 0.600 vs 0.800 kWh/cycle: 200 x 220 = 44 000 Wh/yr x 0.5366 x 8 = 188 883.2 -> 188 883 g
	//  AC 3500 W x 600 h = 2 100 kWh load; /4.0 = 525 000 Wh, /5.2 = 403 846.15 Wh;
	//     diff 121 153.846 Wh x 0.5366 x 10 = 650 111.5 -> 650 111 g
	//  AC 6000 W (class <= 7100 W, ref 3.5) APF 4.2, 2 units: load 3 600 kWh;
	//     3 600 000/3.5 - 3 600 000/4.2 = 1 028 571.43 - 857 142.86 = 171 428.57 Wh
	//     x 0.5366 x 10 x 2 = 1 839 771.4 -> 1 839 771 g
	tests := []struct {
		name      string
		in        ApplianceInput
		wantGrams int64
		wantDec   []string
	}{
		{"fridge grade 1", ApplianceInput{Category: ApplianceRefrigerator, Model: "BCD-470", Grade: 1, LabelValueMilli: 500, Quantity: 1}, 587_577, []string{}},
		{"fridge x3", ApplianceInput{Category: ApplianceRefrigerator, Model: "BCD-470", Grade: 1, LabelValueMilli: 500, Quantity: 3}, 3 * 587_577, []string{}},
		{"washer", ApplianceInput{Category: ApplianceWashingMachine, Model: "XQG100", Grade: 1, LabelValueMilli: 600, Quantity: 1}, 188_883, []string{}},
		{"ac small", ApplianceInput{Category: ApplianceAirConditioner, Model: "KFR-35GW", Grade: 1, LabelValueMilli: 5_200, Quantity: 1, CapacityW: 3_500}, 650_111, []string{"reference_class_upto_4500w"}},
		{"ac medium x2", ApplianceInput{Category: ApplianceAirConditioner, Model: "KFR-72LW", Grade: 2, LabelValueMilli: 4_200, Quantity: 2, CapacityW: 6_000}, 1_839_771, []string{"reference_class_upto_7100w"}},
		{"fridge equal to reference", ApplianceInput{Category: ApplianceRefrigerator, Model: "M", Grade: 3, LabelValueMilli: 800, Quantity: 1}, 0, []string{"not_better_than_reference"}},
		{"fridge worse than reference", ApplianceInput{Category: ApplianceRefrigerator, Model: "M", Grade: 5, LabelValueMilli: 1_400, Quantity: 1}, 0, []string{"not_better_than_reference"}},
		{"ac at reference APF", ApplianceInput{Category: ApplianceAirConditioner, Model: "M", Grade: 3, LabelValueMilli: 4_000, Quantity: 1, CapacityW: 4_500}, 0, []string{"reference_class_upto_4500w", "not_better_than_reference"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, err := m.Appliance(tc.in)
			if err != nil {
				t.Fatalf("Appliance: %v", err)
			}
			if rec.Grams != tc.wantGrams {
				t.Errorf("Appliance(%+v) = %d g, want %d", tc.in, rec.Grams, tc.wantGrams)
			}
			if diff := cmp.Diff(tc.wantDec, rec.Decisions); diff != "" {
				t.Errorf("decisions mismatch (-want +got):\n%s", diff)
			}
			if !strings.Contains(string(rec.Canonical()), `"vintage":"2022"`) {
				t.Errorf("record does not state the grid factor's vintage: %s", rec.Canonical())
			}
		})
	}
}

func TestApplianceRejects(t *testing.T) {
	t.Parallel()
	m := mustFind(t, CategoryAppliance)
	ok := ApplianceInput{Category: ApplianceRefrigerator, Model: "M", Grade: 1, LabelValueMilli: 500, Quantity: 1}
	tests := []struct {
		name   string
		edit   func(*ApplianceInput)
		reason string
	}{
		{"unknown category", func(in *ApplianceInput) { in.Category = "television" }, "unknown_appliance_category"},
		{"no model", func(in *ApplianceInput) { in.Model = "" }, "model_required"},
		{"long model", func(in *ApplianceInput) { in.Model = strings.Repeat("m", 129) }, "model_required"},
		{"grade 0", func(in *ApplianceInput) { in.Grade = 0 }, "grade_out_of_range"},
		{"grade 6", func(in *ApplianceInput) { in.Grade = 6 }, "grade_out_of_range"},
		{"zero label", func(in *ApplianceInput) { in.LabelValueMilli = 0 }, "label_value_out_of_range"},
		{"negative label", func(in *ApplianceInput) { in.LabelValueMilli = -500 }, "label_value_out_of_range"},
		{"huge label", func(in *ApplianceInput) { in.LabelValueMilli = math.MaxInt64 }, "label_value_out_of_range"},
		{"zero quantity", func(in *ApplianceInput) { in.Quantity = 0 }, "quantity_out_of_range"},
		{"negative quantity", func(in *ApplianceInput) { in.Quantity = -1 }, "quantity_out_of_range"},
		{"huge quantity", func(in *ApplianceInput) { in.Quantity = math.MaxInt64 }, "quantity_out_of_range"},
		{"capacity on a fridge", func(in *ApplianceInput) { in.CapacityW = 3500 }, "capacity_not_applicable"},
		{"ac without capacity", func(in *ApplianceInput) {
			in.Category, in.LabelValueMilli = ApplianceAirConditioner, 5000
		}, "capacity_out_of_range"},
		{"ac beyond GB 21455 scope", func(in *ApplianceInput) {
			in.Category, in.LabelValueMilli, in.CapacityW = ApplianceAirConditioner, 5000, 14_001
		}, "capacity_out_of_range"},
		{"ac APF below 1", func(in *ApplianceInput) {
			in.Category, in.LabelValueMilli, in.CapacityW = ApplianceAirConditioner, 999, 3500
		}, "label_value_out_of_range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := ok
			tc.edit(&in)
			_, err := m.Appliance(in)
			if apperr.CodeOf(err) != apperr.Invalid || apperr.ReasonOf(err) != tc.reason {
				t.Errorf("Appliance(%+v) error = %v, want invalid/%s", in, err, tc.reason)
			}
		})
	}
	if _, err := m.Appliance(ok); err != nil {
		t.Fatalf("baseline input rejected: %v", err)
	}
}

// TestApplianceLargestInputs checks the bounds keep the result in range.
func TestApplianceLargestInputs(t *testing.T) {
	t.Parallel()
	m := mustFind(t, CategoryAppliance)
	rec, err := m.Appliance(ApplianceInput{Category: ApplianceAirConditioner, Model: "M", Grade: 1, LabelValueMilli: maxAPFMilli, Quantity: 20, CapacityW: maxCapacityW})
	if err != nil || rec.Grams <= 0 {
		t.Fatalf("Appliance(max) = %d, %v", rec.Grams, err)
	}
}

// goldenRecordHash pins the canonical encoding of one record: a change here
// changes every quantification hash on the ledger, so it must be deliberate
// (and come with a new methodology version).
const goldenRecordHash = "ce7045f4c3c2a00afad10f93752fe7aa374086b17a04315d6d9469a05b58a0f2"

func TestRecordHashStable(t *testing.T) {
	t.Parallel()
	m := mustFind(t, CategoryTransit)
	in := TransitInput{Mode: ModeMetro, DistanceMeters: 10_000}
	rec, err := m.Transit(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.Hash(); got != goldenRecordHash {
		t.Errorf("Hash() = %s, want %s\ncanonical: %s", got, goldenRecordHash, rec.Canonical())
	}
	seen := map[string]string{rec.Hash(): "base"}
	variants := map[string]TransitInput{
		"distance": {Mode: ModeMetro, DistanceMeters: 10_001},
		"mode":     {Mode: ModeBus, DistanceMeters: 10_000},
		"average":  {Mode: ModeMetro, DistanceMeters: 10_000, OperatorAverageMeters: 1},
		"source":   {Mode: ModeMetro, DistanceMeters: 10_000, AverageSource: "x"},
	}
	for name, v := range variants {
		r, err := m.Transit(v)
		if err != nil {
			t.Fatal(err)
		}
		if prev, dup := seen[r.Hash()]; dup {
			t.Errorf("changing %s gives the same hash as %s", name, prev)
		}
		seen[r.Hash()] = name
	}
	a, _ := mustFind(t, CategoryAppliance).Appliance(ApplianceInput{Category: ApplianceRefrigerator, Model: "M", Grade: 1, LabelValueMilli: 500, Quantity: 1})
	b, _ := mustFind(t, CategoryAppliance).Appliance(ApplianceInput{Category: ApplianceRefrigerator, Model: "N", Grade: 1, LabelValueMilli: 500, Quantity: 1})
	c, _ := mustFind(t, CategoryAppliance).Appliance(ApplianceInput{Category: ApplianceRefrigerator, Model: "M", Grade: 2, LabelValueMilli: 500, Quantity: 1})
	if a.Hash() == b.Hash() || a.Hash() == c.Hash() || a.Grams != b.Grams {
		t.Errorf("appliance hashes do not follow the inputs: %s %s %s", a.Hash(), b.Hash(), c.Hash())
	}
	// The methodology document changes the record.
	m2 := m
	m2.Parameters = append([]Factor{}, m.Parameters...)
	m2.Parameters[0].Source += "."
	r2, _ := m2.Transit(in)
	if r2.Hash() == rec.Hash() {
		t.Error("a different methodology document gives the same record hash")
	}
}

func TestMethodologyDocument(t *testing.T) {
	t.Parallel()
	for _, m := range Published().All() {
		if err := m.Validate(); err != nil {
			t.Errorf("%s: %v", m.Ref, err)
		}
		if m.SHA256() != Published().mustGet(t, m.Ref).SHA256() || len(m.SHA256()) != 64 {
			t.Errorf("%s: unstable SHA256", m.Ref)
		}
		doc := string(m.Document())
		if !strings.Contains(doc, `"effectiveAt":"2025-12-31T16:00:00Z"`) {
			t.Errorf("%s: effectiveAt not canonical UTC: %s", m.Ref, doc)
		}
		for _, f := range m.Parameters {
			if f.Source == "" || f.Vintage == "" || f.Unit == "" {
				t.Errorf("%s: parameter %s lacks unit, source or vintage", m.Ref, f.Name)
			}
		}
	}
	// Same instant in another zone: same document.
	m := mustFind(t, CategoryTransit)
	shanghai := time.FixedZone("CST", 8*3600)
	m2 := m
	m2.EffectiveAt = m.EffectiveAt.In(shanghai)
	if m.SHA256() != m2.SHA256() {
		t.Error("the document depends on the zone of EffectiveAt")
	}
	// Mutating a returned copy does not alter the catalogue.
	m.Parameters[0].Value = 1
	if mustFind(t, CategoryTransit).Parameters[0].Value == 1 {
		t.Error("Find returned a value sharing the catalogue's parameters")
	}
}

func (c *Catalogue) mustGet(t *testing.T, ref Ref) Methodology {
	t.Helper()
	m, err := c.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFindByEffectiveTime(t *testing.T) {
	t.Parallel()
	v1 := Published().mustGet(t, TransitCNUrban2026)
	v2 := v1
	v2.Version = "2027.1"
	v2.EffectiveAt = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := NewCatalogue(v2, v1) // any order
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		at      time.Time
		want    string
		wantErr apperr.Code
	}{
		{v1.EffectiveAt.Add(-time.Nanosecond), "", apperr.NotFound},
		{v1.EffectiveAt, "2026.1", ""},
		{v2.EffectiveAt.Add(-time.Nanosecond), "2026.1", ""},
		{v2.EffectiveAt, "2027.1", ""},
		{v2.EffectiveAt.AddDate(5, 0, 0), "2027.1", ""},
	}
	for _, tc := range tests {
		m, err := c.Find(CategoryTransit, "CN", tc.at)
		if apperr.CodeOf(err) != tc.wantErr || m.Version != tc.want {
			t.Errorf("Find(at %s) = %q, %v; want %q, %q", tc.at, m.Version, err, tc.want, tc.wantErr)
		}
	}
	if _, err := c.Find(CategoryTransit, "KR", v2.EffectiveAt); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("Find(KR) error = %v", err)
	}
	if _, err := c.Get(Ref{ID: "transit-cn-urban", Version: "9"}); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("Get(unknown) error = %v", err)
	}
	dup := v1
	dup.Version = "2026.2"
	if _, err := NewCatalogue(v1, dup); apperr.ReasonOf(err) != "duplicate_effective_at" {
		t.Errorf("same effective time accepted: %v", err)
	}
	if _, err := NewCatalogue(v1, v1); apperr.ReasonOf(err) != "duplicate_methodology" {
		t.Errorf("duplicate ref accepted: %v", err)
	}
}

func TestValidateRejectsBadMethodologies(t *testing.T) {
	t.Parallel()
	base := Published().mustGet(t, TransitCNUrban2026)
	tests := []struct {
		name string
		edit func(*Methodology)
	}{
		{"mode above baseline", func(m *Methodology) { m.Parameters[1].Value = 300_000 }},
		{"missing parameter", func(m *Methodology) { m.Parameters = m.Parameters[1:] }},
		{"unsourced", func(m *Methodology) { m.Parameters[0].Source = "" }},
		{"no vintage", func(m *Methodology) { m.Parameters[0].Vintage = "" }},
		{"bad category", func(m *Methodology) { m.Category = "flights" }},
		{"bad id", func(m *Methodology) { m.ID = "Transit CN" }},
		{"bad jurisdiction", func(m *Methodology) { m.Jurisdiction = "China" }},
		{"huge factor", func(m *Methodology) { m.Parameters[0].Value = math.MaxInt64 }},
	}
	for _, tc := range tests {
		m := base.clone()
		tc.edit(&m)
		if err := m.Validate(); apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("%s: Validate() = %v", tc.name, err)
		}
		if _, err := m.Transit(TransitInput{Mode: ModeMetro, DistanceMeters: 1000}); err == nil {
			t.Errorf("%s: Transit accepted an invalid methodology", tc.name)
		}
	}
}
