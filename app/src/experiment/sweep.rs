//! Sweeps: a `[[strategy]]` arm's `sweep` table expanded into cells, each an
//! arm of its own (`dropblock block_size=5 p=0.1`), so that compare, resume,
//! Slurm and the run directories treat a cell as any other arm.
//!
//! Keys are the strategy's parameters, `p` (the schedule's final or constant
//! rate) and `schedule.<key>`; values are a list (a grid) or `{ min, max,
//! log, count }` (a random search, drawn from the experiment's first seed:
//! the same file always expands to the same points). Keys are taken in name
//! order; list keys make a grid, and the random keys add `count` points to
//! each grid point (every random key of an arm has the same `count`).

use std::fmt::Write as _;

use super::schema::{DropKind, DropSchedule, StrategySpec};

/// The sweep key of the schedule's final (or constant) rate.
pub const P_KEY: &str = "p";
/// Sweep keys that set a schedule key start so: `schedule.until`.
pub const SCHEDULE_PREFIX: &str = "schedule.";
/// Most cells one arm may expand into.
pub const MAX_CELLS: usize = 10_000;

/// The values one key takes.
#[derive(Clone, Debug, PartialEq)]
pub enum Axis {
    /// Each of these, in this order.
    Grid(Vec<toml::Value>),
    /// `count` values drawn between `min` and `max` (uniformly, or uniformly
    /// in the logarithm); integers when both bounds are.
    Random {
        min: f64,
        max: f64,
        log: bool,
        count: usize,
        integer: bool,
    },
}

/// One point of a sweep: each swept key's value, in key order.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub values: Vec<(String, toml::Value)>,
}

impl Cell {
    /// `block_size=5 p=0.1`: what follows the arm's label in the cell's.
    pub fn suffix(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.values {
            if !out.is_empty() {
                out.push(' ');
            }
            let _ = write!(out, "{key}={}", show(value));
        }
        out
    }
}

/// A value as a label and a table show it: strings bare.
pub fn show(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What is wrong with a sweep, at `key` (and the value's index in its list).
#[derive(Clone, Debug, PartialEq)]
pub struct SweepError {
    pub key: String,
    pub index: Option<usize>,
    pub message: String,
}

impl SweepError {
    fn at(key: &str, message: impl Into<String>) -> SweepError {
        SweepError {
            key: key.to_string(),
            index: None,
            message: message.into(),
        }
    }
}

/// Reads the `sweep` table: each key's axis, in key order.
pub fn axes(table: &toml::Table) -> Result<Vec<(String, Axis)>, SweepError> {
    let mut out = Vec::new();
    for (key, value) in table {
        let axis = match value {
            toml::Value::Array(values) if values.is_empty() => {
                return Err(SweepError::at(key, "expected at least one value, found []"));
            }
            toml::Value::Array(values) => Axis::Grid(values.clone()),
            toml::Value::Table(range) => random_axis(key, range)?,
            other => {
                return Err(SweepError::at(
                    key,
                    format!(
                        "expected a list of values or {{ min, max, count }}, found {}",
                        other.type_str()
                    ),
                ));
            }
        };
        out.push((key.clone(), axis));
    }
    Ok(out)
}

fn random_axis(key: &str, range: &toml::Table) -> Result<Axis, SweepError> {
    if let Some(extra) = range
        .keys()
        .find(|k| !["min", "max", "log", "count"].contains(&k.as_str()))
    {
        return Err(SweepError::at(
            key,
            format!("unknown key `{extra}` in a random range; it takes min, max, log and count"),
        ));
    }
    let bound = |name: &str| match range.get(name) {
        Some(toml::Value::Integer(i)) => Ok((*i as f64, true)),
        Some(toml::Value::Float(f)) => Ok((*f, false)),
        _ => Err(SweepError::at(
            key,
            format!("a random range needs a number `{name}`"),
        )),
    };
    let ((min, min_int), (max, max_int)) = (bound("min")?, bound("max")?);
    let log = match range.get("log") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(_) => return Err(SweepError::at(key, "`log` must be true or false")),
    };
    let count = match range.get("count") {
        Some(toml::Value::Integer(n)) if *n >= 1 => *n as usize,
        _ => {
            return Err(SweepError::at(
                key,
                "a random range needs `count`, an integer ≥ 1",
            ));
        }
    };
    if !(min.is_finite() && max.is_finite() && min <= max) {
        return Err(SweepError::at(
            key,
            format!("expected min ≤ max, found {min} and {max}"),
        ));
    }
    if log && min <= 0.0 {
        return Err(SweepError::at(
            key,
            format!("log = true needs min > 0, found {min}"),
        ));
    }
    Ok(Axis::Random {
        min,
        max,
        log,
        count,
        integer: min_int && max_int,
    })
}

/// Every cell of `axes`: the grid of the list keys, each grid point with
/// the random keys' `count` draws; `seed` fixes the draws.
pub fn cells(axes: &[(String, Axis)], seed: u64) -> Result<Vec<Cell>, SweepError> {
    let mut counts = axes.iter().filter_map(|(key, axis)| match axis {
        Axis::Random { count, .. } => Some((key, *count)),
        Axis::Grid(_) => None,
    });
    let draws = match counts.next() {
        None => 1,
        Some((first, n)) => {
            if let Some((other, m)) = counts.find(|(_, m)| *m != n) {
                return Err(SweepError::at(
                    other,
                    format!(
                        "every random key draws together: `count` is {n} for `{first}`, {m} here"
                    ),
                ));
            }
            n
        }
    };
    let grid: usize = axes
        .iter()
        .map(|(_, axis)| match axis {
            Axis::Grid(values) => values.len(),
            Axis::Random { .. } => 1,
        })
        .product();
    if grid.saturating_mul(draws) > MAX_CELLS {
        let key = axes.first().map_or("", |(k, _)| k.as_str());
        return Err(SweepError::at(
            key,
            format!(
                "{} cells, more than {MAX_CELLS}",
                grid.saturating_mul(draws)
            ),
        ));
    }
    let mut rng = SplitMix(seed ^ 0x5eed_5eed);
    let mut out = Vec::with_capacity(grid * draws);
    for point in 0..grid {
        for _ in 0..draws {
            out.push(cell_at(axes, point, &mut rng));
        }
    }
    Ok(out)
}

/// Grid point `point` (the last key varying fastest), random keys drawn.
fn cell_at(axes: &[(String, Axis)], mut point: usize, rng: &mut SplitMix) -> Cell {
    let mut values = vec![None; axes.len()];
    for (i, (_, axis)) in axes.iter().enumerate().rev() {
        if let Axis::Grid(list) = axis {
            values[i] = Some(list[point % list.len()].clone());
            point /= list.len();
        }
    }
    let values = axes
        .iter()
        .zip(values)
        .map(|((key, axis), grid)| {
            let value = grid.unwrap_or_else(|| draw(axis, rng.next_unit()));
            (key.clone(), value)
        })
        .collect();
    Cell { values }
}

/// The value of a random axis at `u` in [0, 1), to four significant digits
/// (so that a label shows the value used).
fn draw(axis: &Axis, u: f64) -> toml::Value {
    let Axis::Random {
        min,
        max,
        log,
        integer,
        ..
    } = *axis
    else {
        unreachable!("only random axes are drawn")
    };
    let x = if log {
        (min.ln() + u * (max.ln() - min.ln())).exp()
    } else {
        min + u * (max - min)
    };
    if integer {
        return toml::Value::Integer(x.round().clamp(min, max) as i64);
    }
    if x == 0.0 {
        return toml::Value::Float(0.0);
    }
    let digits = 3 - x.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits.max(0));
    toml::Value::Float(((x * scale).round() / scale).clamp(min, max))
}

/// A seeded stream of uniform numbers (SplitMix64).
struct SplitMix(u64);

impl SplitMix {
    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `arm` with `cell`'s values in place: schedule keys first (so that `p`
/// names the rate of the schedule kind the cell ends with), then `p`, then
/// parameters; its label gains the cell's suffix and it sweeps no more.
pub fn apply(arm: &StrategySpec, cell: &Cell) -> Result<StrategySpec, SweepError> {
    let mut out = arm.clone();
    out.sweep = None;
    for (key, value) in &cell.values {
        if let Some(field) = key.strip_prefix(SCHEDULE_PREFIX) {
            out.schedule =
                with_field(&out.schedule, field, value).map_err(|m| SweepError::at(key, m))?;
        }
    }
    for (key, value) in &cell.values {
        if key == P_KEY {
            out.schedule = with_p(&out.schedule, value).map_err(|m| SweepError::at(key, m))?;
        } else if !key.starts_with(SCHEDULE_PREFIX) {
            out.params.insert(key.clone(), value.clone());
        }
    }
    let base = super::strategy_label(arm);
    out.label = Some(format!("{base} {}", cell.suffix()));
    Ok(out)
}

/// The schedule field `p` stands for under `kind`.
pub fn p_field(kind: DropKind) -> Result<&'static str, String> {
    match kind {
        DropKind::Constant | DropKind::Early | DropKind::Late => Ok("p"),
        DropKind::Linear => Ok("end"),
        DropKind::Step => Err(
            "a step schedule has no single rate to sweep as `p`; sweep `schedule.values` instead"
                .into(),
        ),
    }
}

fn with_p(s: &DropSchedule, value: &toml::Value) -> Result<DropSchedule, String> {
    with_field(s, p_field(s.kind)?, value)
}

/// `s` with `field` set to `value`, through the schedule's own schema.
fn with_field(s: &DropSchedule, field: &str, value: &toml::Value) -> Result<DropSchedule, String> {
    let mut table = toml::Table::try_from(s).map_err(|e| e.to_string())?;
    table.insert(field.to_string(), value.clone());
    table
        .try_into::<DropSchedule>()
        .map_err(|e| e.message().to_string())
}

/// The arms `arm` stands for: itself, or one per cell of its sweep (with
/// the cell), drawn from `seed`.
pub fn expand(
    arm: &StrategySpec,
    seed: u64,
) -> Result<Vec<(StrategySpec, Option<Cell>)>, SweepError> {
    let Some(table) = &arm.sweep else {
        return Ok(vec![(arm.clone(), None)]);
    };
    let axes = axes(table)?;
    cells(&axes, seed)?
        .into_iter()
        .map(|cell| Ok((apply(arm, &cell)?, Some(cell))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(sweep: &str) -> StrategySpec {
        let text = format!(
            "plugin = \"dropblock\"\nparams = {{ block_size = 5 }}\n\
             schedule = {{ kind = \"linear\", end = 0.1 }}\nsweep = {sweep}\n"
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn a_grid_expands_in_key_order_with_the_last_key_fastest() {
        let cells = expand(&arm("{ p = [0.05, 0.1], block_size = [3, 5, 7] }"), 1).unwrap();
        let labels: Vec<String> = cells
            .iter()
            .map(|(s, _)| super::super::strategy_label(s))
            .collect();
        assert_eq!(labels.len(), 6);
        assert_eq!(labels[0], "dropblock block_size=3 p=0.05");
        assert_eq!(labels[1], "dropblock block_size=3 p=0.1");
        assert_eq!(labels[5], "dropblock block_size=7 p=0.1");
        let (last, _) = &cells[5];
        assert_eq!(last.params["block_size"], toml::Value::Integer(7));
        // `p` of a linear schedule is its end.
        assert_eq!(last.schedule.end, Some(0.1));
        assert!(last.sweep.is_none());
    }

    #[test]
    fn random_draws_are_fixed_by_the_seed_and_stay_in_range() {
        let a =
            arm("{ p = { min = 0.01, max = 0.3, log = true, count = 8 }, block_size = [3, 5] }");
        let first = expand(&a, 7).unwrap();
        assert_eq!(first.len(), 16);
        assert_eq!(first, expand(&a, 7).unwrap());
        assert_ne!(first, expand(&a, 8).unwrap());
        for (s, _) in &first {
            let p = s.schedule.end.unwrap();
            assert!((0.01..=0.3).contains(&p), "{p}");
            // Four significant digits: the label shows the value used.
            assert!(super::super::strategy_label(s).ends_with(&format!("p={p}")));
        }
        let ints = expand(&arm("{ block_size = { min = 2, max = 9, count = 20 } }"), 1).unwrap();
        for (s, _) in ints {
            let b = s.params["block_size"].as_integer().unwrap();
            assert!((2..=9).contains(&b), "{b}");
        }
    }

    #[test]
    fn schedule_keys_and_their_mistakes() {
        // `p` is the rate of the kind the cell ends with: a constant's `p`.
        let cells = expand(&arm("{ \"schedule.kind\" = [\"constant\"], p = [0.2] }"), 1);
        let (s, _) = &cells.unwrap()[0];
        assert_eq!(s.schedule.kind, DropKind::Constant);
        assert_eq!(s.schedule.p, Some(0.2));
        let err = expand(&arm("{ \"schedule.nope\" = [1] }"), 1).unwrap_err();
        assert_eq!(err.key, "schedule.nope");
        assert!(err.message.contains("unknown field"), "{err:?}");
        let err = expand(&arm("{ p = { min = 0.3, max = 0.1, count = 2 } }"), 1).unwrap_err();
        assert!(err.message.contains("min ≤ max"), "{err:?}");
        let err = expand(
            &arm("{ p = { min = 0.1, max = 0.3, count = 2 }, block_size = { min = 3, max = 7, count = 3 } }"),
            1,
        )
        .unwrap_err();
        assert_eq!(err.key, "p");
        assert!(err.message.contains("draws together"), "{err:?}");
        let err = expand(&arm("{ block_size = [] }"), 1).unwrap_err();
        assert!(err.message.contains("at least one value"), "{err:?}");
    }
}
