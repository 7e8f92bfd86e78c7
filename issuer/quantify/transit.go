package quantify

import (
	"fmt"
	"slices"
)

// Urban transit modes with a factor.
const (
	ModeBus   = "bus"
	ModeMetro = "metro"
)

// Where the distance of a trip came from.
const (
	// DistanceMeasured: the operator's trip record gave the distance.
	DistanceMeasured = "measured"
	// DistanceOperatorAverage: the trip record had none; the operator's
	// published average trip distance for the mode was used.
	DistanceOperatorAverage = "operator_average"
)

// Transit parameter names.
const (
	paramBaseline        = "baseline_factor"
	paramModePrefix      = "mode_factor."
	paramMaxTripDistance = "max_trip_distance"
)

// maxAverageSourceLen bounds the operator's source citation.
const maxAverageSourceLen = 200

var transitModes = []string{ModeBus, ModeMetro}

func modeParam(mode string) string { return paramModePrefix + mode }

// transitParams are the parameters Transit reads, with their bounds.
var transitParams = []paramSpec{
	{paramBaseline, 1, 2_000_000},
	{modeParam(ModeBus), 0, 2_000_000},
	{modeParam(ModeMetro), 0, 2_000_000},
	{paramMaxTripDistance, 1_000, 1_000_000},
}

// TransitInput is one urban transit trip as the methodology needs it.
type TransitInput struct {
	// Mode is ModeBus or ModeMetro.
	Mode string `json:"mode"`
	// DistanceMeters is the trip's distance from the operator's record;
	// 0 means unknown.
	DistanceMeters int64 `json:"distanceMeters"`
	// OperatorAverageMeters is the operator's published average trip
	// distance for Mode, used when DistanceMeters is 0.
	OperatorAverageMeters int64 `json:"operatorAverageMeters"`
	// AverageSource cites where the operator published the average.
	AverageSource string `json:"averageSource"`
}

// Transit quantifies one urban bus or metro trip:
//
//	grams = floor(distance_m * (baseline_factor - mode_factor) / 1e6)
//
// with factors in mg CO2e per passenger-km. An unknown distance (0) uses the
// operator's average and the record says so (DistanceOperatorAverage).
//
// Errors (apperr Invalid): "wrong_methodology"; "intercity_mode" for any mode
// but bus and metro ("mode_required" when empty); "distance_out_of_range" for
// a negative distance or one beyond max_trip_distance;
// "average_distance_missing" / "average_source_missing" when the distance is
// unknown and the operator average or its source is missing or out of range.
func (m Methodology) Transit(in TransitInput) (Record, error) {
	if err := m.requireCategory(CategoryTransit); err != nil {
		return Record{}, err
	}
	switch {
	case in.Mode == "":
		return Record{}, invalidInput("mode", "mode_required", "the trip's mode is required")
	case !slices.Contains(transitModes, in.Mode):
		return Record{}, invalidInput("mode", "intercity_mode",
			"methodology %s covers urban bus and metro trips only, not %q", m.Ref, truncate(in.Mode, 32))
	}
	maxDist := m.param(paramMaxTripDistance)
	rec := newRecord(m)
	dist := in.DistanceMeters
	switch {
	case dist < 0 || dist > maxDist.Value:
		return Record{}, invalidInput("distanceMeters", "distance_out_of_range",
			"the distance must be 0 (unknown) to %d m", maxDist.Value)
	case dist > 0:
		rec.DistanceSource = DistanceMeasured
		rec.Decisions = append(rec.Decisions, "distance_measured")
	default:
		if in.OperatorAverageMeters <= 0 || in.OperatorAverageMeters > maxDist.Value {
			return Record{}, invalidInput("operatorAverageMeters", "average_distance_missing",
				"the distance is unknown: the operator's average trip distance (1 to %d m) is required", maxDist.Value)
		}
		if in.AverageSource == "" || len(in.AverageSource) > maxAverageSourceLen {
			return Record{}, invalidInput("averageSource", "average_source_missing",
				"the distance is unknown: the source of the operator's average (at most %d bytes) is required", maxAverageSourceLen)
		}
		dist = in.OperatorAverageMeters
		rec.DistanceSource = DistanceOperatorAverage
		rec.Decisions = append(rec.Decisions, "distance_operator_average")
	}
	base, mode := m.param(paramBaseline), m.param(modeParam(in.Mode))
	// Validate bounds both factors to 2e6 and the distance to 1e6, so the
	// product is below 2e12: no overflow is possible.
	perKm := base.Value - mode.Value
	in2 := in
	rec.Transit = &in2
	rec.Quantities = append(rec.Quantities,
		Quantity{Name: "distance", Unit: "m", Value: dist},
		Quantity{Name: "reduction_factor", Unit: base.Unit, Value: perKm},
	)
	rec.Factors = append(rec.Factors, base, mode)
	rec.Grams = dist * perKm / 1_000_000
	return rec, nil
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s...", s[:n])
}
