package quantify

import (
	"math/big"
	"unicode/utf8"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// Appliance categories of the China Energy Label with a reference.
const (
	ApplianceRefrigerator   = "refrigerator"
	ApplianceWashingMachine = "washing_machine"
	ApplianceAirConditioner = "air_conditioner"
)

// Appliance parameter names.
const (
	paramGrid        = "grid_emission_factor"
	paramMaxQuantity = "max_quantity"

	paramFridgeReference = "refrigerator.reference_daily_consumption"
	paramFridgeDays      = "refrigerator.days_per_year"
	paramFridgeYears     = "refrigerator.credited_years"

	paramWasherReference = "washing_machine.reference_cycle_consumption"
	paramWasherCycles    = "washing_machine.cycles_per_year"
	paramWasherYears     = "washing_machine.credited_years"

	paramACHours = "air_conditioner.equivalent_full_load_hours"
	paramACYears = "air_conditioner.credited_years"
)

// acClass is a rated cooling capacity class of GB 21455-2019; the reference
// APF of each is a methodology parameter.
type acClass struct {
	maxW  int64
	param string
}

// acClasses are the capacity classes of GB 21455-2019, smallest first. The
// standard's scope ends at 14 000 W.
var acClasses = []acClass{
	{4500, "air_conditioner.reference_apf.upto_4500w"},
	{7100, "air_conditioner.reference_apf.upto_7100w"},
	{14000, "air_conditioner.reference_apf.upto_14000w"},
}

// Input bounds: a limit on everything.
const (
	maxModelLen  = 128
	maxLabelWh   = 20_000 // Wh per 24 h or per cycle: 20 kWh
	minAPFMilli  = 1_000
	maxAPFMilli  = 20_000
	maxCapacityW = 14_000
	minGrade     = 1
	maxGrade     = 5
	whPerMWh     = 1_000_000 // Wh x g/MWh / whPerMWh = g
)

// applianceParams are the parameters Appliance reads, with their bounds.
var applianceParams = func() []paramSpec {
	ps := []paramSpec{
		{paramGrid, 1, 2_000_000},
		{paramMaxQuantity, 1, 1_000},
		{paramFridgeReference, 1, maxLabelWh},
		{paramFridgeDays, 365, 366},
		{paramFridgeYears, 1, 30},
		{paramWasherReference, 1, maxLabelWh},
		{paramWasherCycles, 1, 2_000},
		{paramWasherYears, 1, 30},
		{paramACHours, 1, 8_760},
		{paramACYears, 1, 30},
	}
	for _, c := range acClasses {
		ps = append(ps, paramSpec{c.param, minAPFMilli, maxAPFMilli})
	}
	return ps
}()

// ApplianceInput is one purchased appliance line item matched to the China
// Energy Label registry.
type ApplianceInput struct {
	// Category is ApplianceRefrigerator, ApplianceWashingMachine or
	// ApplianceAirConditioner.
	Category string `json:"category"`
	// Model is the registry's model designation.
	Model string `json:"model"`
	// Grade is the label's energy efficiency grade, 1 (best) to 5.
	Grade int `json:"grade"`
	// LabelValueMilli is the label value x 1000 in the category's unit:
	// Wh per 24 h (refrigerator: kWh/24h x 1000), Wh per cycle (washing
	// machine), APF x 1000 (air conditioner).
	LabelValueMilli int64 `json:"labelValueMilli"`
	// Quantity is the number of units on the line item.
	Quantity int64 `json:"quantity"`
	// CapacityW is the rated cooling capacity of an air conditioner in W;
	// 0 for other categories.
	CapacityW int64 `json:"capacityW"`
}

// Appliance quantifies the purchase of an efficient appliance:
//
//	grams = floor((reference_annual_Wh - model_annual_Wh) x grid_g_per_MWh
//	              x credited_years x quantity / 1e6)
//
// computed exactly (rationals for air conditioners, rounded once at the end).
// Annual consumption: refrigerator = label Wh/24h x days_per_year; washing
// machine = label Wh/cycle x cycles_per_year; air conditioner = capacity_W x
// equivalent_full_load_hours / APF. A model no better than the reference
// earns 0 grams with the decision "not_better_than_reference".
//
// Errors (apperr Invalid): "wrong_methodology", "unknown_appliance_category",
// "model_required", "grade_out_of_range", "label_value_out_of_range",
// "quantity_out_of_range", "capacity_out_of_range",
// "capacity_not_applicable".
func (m Methodology) Appliance(in ApplianceInput) (Record, error) {
	if err := m.requireCategory(CategoryAppliance); err != nil {
		return Record{}, err
	}
	if err := m.checkAppliance(in); err != nil {
		return Record{}, err
	}
	rec := newRecord(m)
	in2 := in
	rec.Appliance = &in2

	// Annual consumption per unit as refNum/den and modelNum/den Wh.
	var refNum, modelNum, den *big.Int
	var years Factor
	switch in.Category {
	case ApplianceRefrigerator:
		ref, days := m.param(paramFridgeReference), m.param(paramFridgeDays)
		years = m.param(paramFridgeYears)
		refNum, modelNum, den = mulInt(ref.Value, days.Value), mulInt(in.LabelValueMilli, days.Value), big.NewInt(1)
		rec.Factors = append(rec.Factors, ref, days)
	case ApplianceWashingMachine:
		ref, cycles := m.param(paramWasherReference), m.param(paramWasherCycles)
		years = m.param(paramWasherYears)
		refNum, modelNum, den = mulInt(ref.Value, cycles.Value), mulInt(in.LabelValueMilli, cycles.Value), big.NewInt(1)
		rec.Factors = append(rec.Factors, ref, cycles)
	case ApplianceAirConditioner:
		hours := m.param(paramACHours)
		years = m.param(paramACYears)
		class := acClasses[len(acClasses)-1]
		for _, c := range acClasses {
			if in.CapacityW <= c.maxW {
				class = c
				break
			}
		}
		refAPF := m.param(class.param)
		load := in.CapacityW * hours.Value // <= 14 000 x 8 760: fits easily
		// Wh = load x 1000 / APFmilli; over the common denominator
		// refAPF x APF: ref = load x 1000 x APF, model = load x 1000 x refAPF.
		refNum = mulInt(load*1000, in.LabelValueMilli)
		modelNum = mulInt(load*1000, refAPF.Value)
		den = mulInt(refAPF.Value, in.LabelValueMilli)
		rec.Quantities = append(rec.Quantities, Quantity{Name: "annual_load", Unit: "Wh per year per unit", Value: load})
		rec.Factors = append(rec.Factors, hours, refAPF)
		rec.Decisions = append(rec.Decisions, "reference_class_"+class.param[len("air_conditioner.reference_apf."):])
	}
	grid := m.param(paramGrid)
	rec.Factors = append(rec.Factors, years, grid)
	rec.Quantities = append(rec.Quantities,
		Quantity{Name: "reference_annual_consumption", Unit: "Wh per year per unit (rounded down)", Value: quo(refNum, den)},
		Quantity{Name: "model_annual_consumption", Unit: "Wh per year per unit (rounded down)", Value: quo(modelNum, den)},
		Quantity{Name: "credited_years", Unit: "years", Value: years.Value},
		Quantity{Name: "quantity", Unit: "units", Value: in.Quantity},
	)
	diff := new(big.Int).Sub(refNum, modelNum)
	if diff.Sign() <= 0 {
		rec.Decisions = append(rec.Decisions, "not_better_than_reference")
		return rec, nil
	}
	num := diff.Mul(diff, big.NewInt(grid.Value))
	num.Mul(num, big.NewInt(years.Value))
	num.Mul(num, big.NewInt(in.Quantity))
	grams := num.Quo(num, den.Mul(den, big.NewInt(whPerMWh)))
	if !grams.IsInt64() {
		// Unreachable within the parameter and input bounds; kept as the
		// last line of defence rather than a silent wrap.
		return Record{}, apperr.New(apperr.Invalid, "overflow", "the reduction overflows a 64-bit integer")
	}
	rec.Grams = grams.Int64()
	return rec, nil
}

// checkAppliance enforces the input bounds.
func (m Methodology) checkAppliance(in ApplianceInput) error {
	var maxLabel, minLabel int64 = maxLabelWh, 1
	switch in.Category {
	case ApplianceRefrigerator, ApplianceWashingMachine:
		if in.CapacityW != 0 {
			return invalidInput("capacityW", "capacity_not_applicable", "capacityW applies to air conditioners only")
		}
	case ApplianceAirConditioner:
		minLabel, maxLabel = minAPFMilli, maxAPFMilli
		if in.CapacityW <= 0 || in.CapacityW > maxCapacityW {
			return invalidInput("capacityW", "capacity_out_of_range", "the rated cooling capacity must be 1 to %d W", maxCapacityW)
		}
	default:
		return invalidInput("category", "unknown_appliance_category",
			"methodology %s covers %s, %s and %s, not %q", m.Ref,
			ApplianceRefrigerator, ApplianceWashingMachine, ApplianceAirConditioner, truncate(in.Category, 32))
	}
	if in.Model == "" || len(in.Model) > maxModelLen || !utf8.ValidString(in.Model) {
		return invalidInput("model", "model_required", "the model is required (valid UTF-8, at most %d bytes)", maxModelLen)
	}
	if in.Grade < minGrade || in.Grade > maxGrade {
		return invalidInput("grade", "grade_out_of_range", "the energy label grade must be %d to %d", minGrade, maxGrade)
	}
	if in.LabelValueMilli < minLabel || in.LabelValueMilli > maxLabel {
		return invalidInput("labelValueMilli", "label_value_out_of_range", "the label value x 1000 must be %d to %d", minLabel, maxLabel)
	}
	maxQty := m.param(paramMaxQuantity).Value
	if in.Quantity <= 0 || in.Quantity > maxQty {
		return invalidInput("quantity", "quantity_out_of_range", "the quantity must be 1 to %d", maxQty)
	}
	return nil
}

func mulInt(a, b int64) *big.Int { return new(big.Int).Mul(big.NewInt(a), big.NewInt(b)) }

// quo returns floor(a/b) for non-negative a and positive b; the values it
// sees are bounded well within int64.
func quo(a, b *big.Int) int64 { return new(big.Int).Quo(a, b).Int64() }
