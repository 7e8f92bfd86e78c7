package quantify

import "time"

// Built-in refs. A change to any published parameter is a new version: the
// old document stays as anchored, so past records remain re-derivable.
var (
	TransitCNUrban2026   = Ref{ID: "transit-cn-urban", Version: "2026.1"}
	ApplianceCNLabel2026 = Ref{ID: "appliance-cn-label", Version: "2026.1"}
)

// builtinEffectiveAt is 2026-01-01T00:00:00+08:00.
var builtinEffectiveAt = time.Date(2025, 12, 31, 16, 0, 0, 0, time.UTC)

// Sources cited by the built-ins; docs/methodology.md gives the full
// references and the reconciliation.
const (
	srcBeijing2019 = "Beijing low-carbon travel (MaaS) carbon-inclusive scheme, urban passenger transport emission factors per passenger-km"
	srcShenzhen    = "Shenzhen low-carbon public transport carbon-inclusive methodology (深圳市低碳公共出行碳普惠方法学), published REDUCTIONS vs general travel, as reported by Shenzhen Commercial Daily 2022-09-23 (metro reported there as 46.7)"
	srcZheng2023   = "Zheng et al., Spatiotemporal analysis of CO2 emissions ... of Beijing buses using smart card data, Sustainable Cities and Society 99 (2023) 104976: average 56.2 g CO2 per passenger-km"
	srcMEE2022     = "MEE & NBS, 关于发布2022年电力二氧化碳排放因子的公告 (announcement dated 2024-12-20): national average electricity CO2 emission factor 0.5366 kg CO2/kWh"
	srcCHEAA       = "China Household Electrical Appliances Association, 家用电器安全使用年限细则 (2014): safe service life"
	srcGB21455     = "GB 21455-2019 房间空气调节器能效限定值及能效等级, heat-pump variable-speed units, grade 3 APF of the capacity class"
)

// published returns the built-in methodology versions.
func published() []Methodology {
	return []Methodology{
		{
			Ref:          TransitCNUrban2026,
			Category:     CategoryTransit,
			Jurisdiction: "CN",
			Title:        "Urban bus and metro trips instead of private car trips (China)",
			EffectiveAt:  builtinEffectiveAt,
			Formula: "grams = floor(distance_m x (baseline_factor - mode_factor[mode]) / 1e6), factors in mg CO2e per passenger-km; " +
				"distance_m is the operator's trip distance, or when unknown the operator's published average trip distance for the mode (distance_source operator_average)",
			Parameters: []Factor{
				{Name: paramBaseline, Unit: "mg CO2e per passenger-km", Value: 272_000, Source: srcBeijing2019 + ": private car", Vintage: "2019"},
				{Name: modeParam(ModeMetro), Unit: "mg CO2e per passenger-km", Value: 61_000, Source: srcBeijing2019 + ": metro", Vintage: "2019"},
				{Name: modeParam(ModeBus), Unit: "mg CO2e per passenger-km", Value: 81_000,
					Source:  "derived: Beijing metro factor 61 g/pkm plus the gap between Shenzhen's published metro and e-bus reductions (46.8 - 26.9 = 19.9 g/pkm; both share one baseline, so the gap is the difference of the two mode factors), rounded up to 81 g/pkm",
					Vintage: "2019 (Beijing metro); Shenzhen trial methodology", Assumption: true},
				{Name: paramMaxTripDistance, Unit: "m", Value: 150_000, Source: "methodology limit: longer trips are not urban", Vintage: "2026", Assumption: true},
			},
			CrossChecks: []Factor{
				{Name: "shenzhen.reduction.e_bus", Unit: "mg CO2e per passenger-km, REDUCTION (baseline - mode), not a factor", Value: 26_900, Source: srcShenzhen, Vintage: "trial methodology, reported 2022"},
				{Name: "shenzhen.reduction.metro", Unit: "mg CO2e per passenger-km, REDUCTION (baseline - mode), not a factor", Value: 46_800, Source: srcShenzhen, Vintage: "trial methodology, reported 2022"},
				{Name: "beijing.bus_factor.smart_card_study", Unit: "mg CO2 per passenger-km", Value: 56_200, Source: srcZheng2023, Vintage: "Beijing bus smart-card data (study published 2023)"},
			},
			Notes: []string{
				"Urban bus and metro only; any other mode is refused (intercity_mode) until a methodology covers it.",
				"The baseline assumes the trip replaces a private-car trip. Shenzhen's published reductions are against general travel and are lower (26.9 and 46.8 g/pkm against 191 and 211 here).",
				"The bus factor is derived, not published; it is higher (more conservative) than the 56.2 g/pkm Beijing smart-card study figure.",
				"Published reductions are never subtracted from factors; cross-checks are not read by the computation.",
				"Results are rounded down to whole grams.",
			},
		},
		{
			Ref:          ApplianceCNLabel2026,
			Category:     CategoryAppliance,
			Jurisdiction: "CN",
			Title:        "Purchase of a household appliance more efficient than the China Energy Label reference (China)",
			EffectiveAt:  builtinEffectiveAt,
			Formula: "grams = floor((reference_annual_Wh - model_annual_Wh) x grid_emission_factor x credited_years x quantity / 1e6), computed exactly; " +
				"refrigerator annual Wh = label Wh/24h x days_per_year; washing machine annual Wh = label Wh/cycle x cycles_per_year; " +
				"air conditioner annual Wh = capacity_W x equivalent_full_load_hours / APF; 0 grams when the model is not better than the reference",
			Parameters: []Factor{
				{Name: paramGrid, Unit: "g CO2 per MWh", Value: 536_600, Source: srcMEE2022, Vintage: "2022"},
				{Name: paramMaxQuantity, Unit: "units per line item", Value: 20, Source: "methodology limit", Vintage: "2026", Assumption: true},
				{Name: paramFridgeReference, Unit: "Wh per 24 h", Value: 800, Source: "typical grade-3 consumption of a 200-300 L two-door refrigerator under GB 12021.2; chosen low (conservative)", Vintage: "2026", Assumption: true},
				{Name: paramFridgeDays, Unit: "days per year", Value: 365, Source: "calendar", Vintage: "n/a"},
				{Name: paramFridgeYears, Unit: "years", Value: 10, Source: srcCHEAA + ": refrigerators 10 years", Vintage: "2014"},
				{Name: paramWasherReference, Unit: "Wh per cycle", Value: 800, Source: "typical grade-3 consumption per rated cycle under GB 12021.4; chosen low (conservative)", Vintage: "2026", Assumption: true},
				{Name: paramWasherCycles, Unit: "cycles per year", Value: 220, Source: "annual cycle convention of Commission Delegated Regulation (EU) 2019/2014, adopted for China", Vintage: "2019", Assumption: true},
				{Name: paramWasherYears, Unit: "years", Value: 8, Source: srcCHEAA + ": washing machines 8 years", Vintage: "2014"},
				{Name: paramACHours, Unit: "h per year (cooling + heating, at rated capacity)", Value: 600, Source: "equivalent full-load hours; chosen low (conservative)", Vintage: "2026", Assumption: true},
				{Name: acClasses[0].param, Unit: "APF x 1000, rated cooling capacity <= 4500 W", Value: 4_000, Source: srcGB21455, Vintage: "2019"},
				{Name: acClasses[1].param, Unit: "APF x 1000, 4500 W < rated cooling capacity <= 7100 W", Value: 3_500, Source: srcGB21455, Vintage: "2019"},
				{Name: acClasses[2].param, Unit: "APF x 1000, 7100 W < rated cooling capacity <= 14000 W", Value: 3_300, Source: srcGB21455, Vintage: "2019"},
				{Name: paramACYears, Unit: "years", Value: 10, Source: srcCHEAA + ": air conditioners 10 years", Vintage: "2014"},
			},
			CrossChecks: []Factor{
				{Name: "mee.power_sector_reporting_grid_factor", Unit: "g CO2 per MWh", Value: 570_300,
					Source: "MEE national grid average emission factor for power-sector enterprise GHG reporting (2023 notice); higher than the 2022 national average, not used", Vintage: "reporting factor, 2023"},
			},
			Notes: []string{
				"The computation uses the label value, not the grade; the grade is recorded as matched in the registry.",
				"Reference consumptions of refrigerators and washing machines, cycles per year and air-conditioner load hours are assumptions, chosen low.",
				"Credited years count the avoided consumption over the appliance's service life, undiscounted, at the 2022 grid factor.",
				"Results are rounded down to whole grams, once, after exact arithmetic.",
			},
		},
	}
}
