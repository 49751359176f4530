//! The dropout slots of each model, named as its modules are (torchvision's
//! names for the ResNets), in forward order: the one list that the forward
//! passes, `check` and the trainer read. A strategy picks slots by name,
//! alias or pattern, and its depth rule scales `p` by each pick's position.

use serde::{Deserialize, Serialize};

use super::schema::{ModelKind, ModelSpec, SlotSpec, StrategySpec};

/// Old names that keep their meaning: a ResNet's stage outputs.
const ALIASES: [(&str, &str); 2] = [("stage3", "layer3"), ("stage4", "layer4")];

/// One slot of a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotDef {
    pub name: String,
    /// Whether a strategy without a `slots` key applies here (the slots
    /// that existed before names followed the modules, so that old files
    /// keep their meaning).
    pub default: bool,
}

/// The slot names of one residual block, in forward order: after each batch
/// norm (before its activation), the shortcut (identity or projection) and
/// the residual branch, both just before the addition.
pub struct BlockSlots {
    pub bns: Vec<String>,
    pub shortcut: String,
    pub branch: String,
}

impl BlockSlots {
    /// Block `block` (from 0) of stage `stage` (from 1), with `bns` batch norms.
    pub fn at(stage: usize, block: usize, bns: usize) -> BlockSlots {
        let base = format!("layer{stage}.{block}");
        BlockSlots {
            bns: (1..=bns).map(|i| format!("{base}.bn{i}")).collect(),
            shortcut: format!("{base}.shortcut"),
            branch: format!("{base}.branch"),
        }
    }

    fn names(self) -> impl Iterator<Item = String> {
        self.bns.into_iter().chain([self.shortcut, self.branch])
    }
}

/// The slot names of one transformer layer, in forward order: the attention
/// logits (before the softmax), the attention branch and the feed-forward
/// branch (each just before its add), and the layer's output.
pub struct LayerSlots {
    pub keys: String,
    pub attn: String,
    pub ff: String,
    pub output: String,
}

impl LayerSlots {
    /// Layer `layer` (from 1).
    pub fn at(layer: usize) -> LayerSlots {
        let output = format!("layer{layer}");
        LayerSlots {
            keys: format!("{output}.keys"),
            attn: format!("{output}.attn"),
            ff: format!("{output}.ff"),
            output,
        }
    }

    /// Each name, and whether a strategy without `slots` applies there (the
    /// layer's output, as before the branches had names).
    fn defs(self) -> [SlotDef; 4] {
        let def = |name, default| SlotDef { name, default };
        [
            def(self.keys, false),
            def(self.attn, false),
            def(self.ff, false),
            def(self.output, true),
        ]
    }
}

/// The transformer's per-head attention outputs, one slot for every layer.
pub const HEADS_SLOT: &str = "heads";

/// The name of stage `stage`'s output.
pub fn stage_slot(stage: usize) -> String {
    format!("layer{stage}")
}

/// Blocks per stage and batch norms per block of a residual model.
pub fn residual_layout(kind: ModelKind) -> Option<(&'static [usize], usize)> {
    match kind {
        ModelKind::Resnet18 => Some((&[2, 2, 2, 2], 2)),
        ModelKind::Resnet20 => Some((&[3, 3, 3], 2)),
        ModelKind::Resnet50 => Some((&[3, 4, 6, 3], 3)),
        _ => None,
    }
}

/// Every slot of `m`, in forward order.
pub fn slot_defs(m: &ModelSpec) -> Vec<SlotDef> {
    let all = |names: Vec<String>| {
        names
            .into_iter()
            .map(|name| SlotDef {
                name,
                default: true,
            })
            .collect()
    };
    match m.kind {
        ModelKind::SmallCnn => {
            let n = m.channels.as_ref().map_or(2, Vec::len);
            all((2..=n).map(|i| format!("block{i}")).collect())
        }
        ModelKind::Resnet18 | ModelKind::Resnet20 | ModelKind::Resnet50 => residual_slots(m.kind),
        ModelKind::Transformer => {
            let mut defs: Vec<SlotDef> = (1..=m.layers.unwrap_or(2))
                .flat_map(|i| LayerSlots::at(i).defs())
                .collect();
            defs.push(SlotDef {
                name: HEADS_SLOT.into(),
                default: true,
            });
            defs
        }
    }
}

fn residual_slots(kind: ModelKind) -> Vec<SlotDef> {
    let Some((blocks, bns)) = residual_layout(kind) else {
        return Vec::new();
    };
    // Without `slots`, the outputs of the last two stages (the DropBlock
    // paper's groups 3 and 4; what `stage3` and `stage4` always meant).
    let first_default = blocks.len().saturating_sub(1);
    let mut out = Vec::new();
    for (s, &count) in blocks.iter().enumerate() {
        let stage = s + 1;
        for block in 0..count {
            out.extend(
                BlockSlots::at(stage, block, bns)
                    .names()
                    .map(|name| SlotDef {
                        name,
                        default: false,
                    }),
            );
        }
        out.push(SlotDef {
            name: stage_slot(stage),
            default: stage >= first_default,
        });
    }
    out
}

/// Every slot name of `m`, in forward order.
pub fn model_slots(m: &ModelSpec) -> Vec<String> {
    slot_defs(m).into_iter().map(|d| d.name).collect()
}

/// The slot `name` stands for on `m` (itself, or what its alias names).
pub fn canonical(m: &ModelSpec, name: &str) -> Option<String> {
    // Files from before ResNet-20 existed name only ResNet-18 and 50 slots so.
    let name = match m.kind {
        ModelKind::Resnet18 | ModelKind::Resnet50 => ALIASES
            .iter()
            .find(|(from, _)| *from == name)
            .map_or(name, |(_, to)| to),
        _ => name,
    };
    model_slots(m).into_iter().find(|n| n == name)
}

/// The `[model.slots.NAME]` table that applies at slot `name`, by its own
/// name or an alias.
pub fn override_for<'a>(m: &'a ModelSpec, name: &str) -> Option<&'a SlotSpec> {
    m.slots
        .iter()
        .find(|(key, _)| canonical(m, key).as_deref() == Some(name))
        .map(|(_, spec)| spec)
}

/// How a strategy's rate changes with the position of its slots.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DepthRule {
    /// The same rate at every slot.
    #[default]
    Constant,
    /// From 0 at the first picked slot to the full rate at the last, in
    /// forward order (stochastic depth's rule: slot i of N gets `p·i/(N−1)`).
    Linear,
    /// The reverse: the full rate at the first slot, 0 at the last.
    LinearDown,
}

impl DepthRule {
    /// The factor on `p` at position `i` of `n` picked slots.
    /// A single slot takes the full rate under any rule.
    pub fn scale(self, i: usize, n: usize) -> f64 {
        let along = i as f64 / n.saturating_sub(1).max(1) as f64;
        match self {
            DepthRule::Constant => 1.0,
            _ if n < 2 => 1.0,
            DepthRule::Linear => along,
            DepthRule::LinearDown => 1.0 - along,
        }
    }
}

/// A slot a strategy applies at, and its depth rule's factor there.
#[derive(Clone, Debug, PartialEq)]
pub struct Placed {
    pub name: String,
    pub depth_scale: f64,
}

/// An entry of a strategy's `slots` that matches no slot of the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Unmatched {
    /// Its index in `slots`.
    pub index: usize,
    pub pattern: String,
}

/// Where strategy `s` applies on `m`, in forward order: the slots its
/// `slots` entries name or match (every default slot without the key), each
/// with its depth factor.
pub fn placement(m: &ModelSpec, s: &StrategySpec) -> Result<Vec<Placed>, Vec<Unmatched>> {
    let defs = slot_defs(m);
    let mut picked = vec![false; defs.len()];
    let mut unmatched = Vec::new();
    match &s.slots {
        None => picked
            .iter_mut()
            .zip(&defs)
            .for_each(|(p, d)| *p = d.default),
        Some(entries) => {
            for (index, entry) in entries.iter().enumerate() {
                let exact = canonical(m, entry);
                let mut hit = false;
                for (p, d) in picked.iter_mut().zip(&defs) {
                    if exact.as_deref() == Some(d.name.as_str()) || glob(entry, &d.name) {
                        *p = true;
                        hit = true;
                    }
                }
                if !hit {
                    unmatched.push(Unmatched {
                        index,
                        pattern: entry.clone(),
                    });
                }
            }
        }
    }
    if !unmatched.is_empty() {
        return Err(unmatched);
    }
    let names: Vec<String> = defs
        .into_iter()
        .zip(picked)
        .filter(|(_, p)| *p)
        .map(|(d, _)| d.name)
        .collect();
    let n = names.len();
    Ok(names
        .into_iter()
        .enumerate()
        .map(|(i, name)| Placed {
            name,
            depth_scale: s.depth_rule.scale(i, n),
        })
        .collect())
}

/// The factor on `p` at placed slot `p`: its depth factor times its
/// `[model.slots]` `p_scale`; `None` where `[model.slots]` turns it off.
pub fn effective_scale(m: &ModelSpec, p: &Placed) -> Option<f64> {
    let over = override_for(m, &p.name);
    if over.is_some_and(|o| !o.enabled) {
        return None;
    }
    Some(p.depth_scale * over.map_or(1.0, |o| o.p_scale))
}

/// Where strategy `s` applies on `m`, for people: each slot with the factor
/// on `p` there (its depth factor times its `[model.slots]` `p_scale`) when
/// that is not 1; slots turned off by `[model.slots]` left out. `None` when a
/// `slots` entry matches nothing (`check` reports that).
pub fn describe_placement(m: &ModelSpec, s: &StrategySpec) -> Option<String> {
    let placed = placement(m, s).ok()?;
    let parts: Vec<String> = placed
        .iter()
        .filter_map(|p| {
            let scale = effective_scale(m, p)?;
            Some(if scale == 1.0 {
                p.name.clone()
            } else {
                format!("{} ×{}", p.name, round3(scale))
            })
        })
        .collect();
    let count = match parts.len() {
        1 => "1 slot".to_string(),
        n => format!("{n} slots"),
    };
    Some(format!("{count}: {}", parts.join(", ")))
}

/// `x` to three decimals, without trailing zeros.
fn round3(x: f64) -> String {
    let text = format!("{x:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Whether `name` matches `pattern`: `*` any run of characters within one
/// dot-separated part, `?` one character, `[34]` or `[1-3]` one of a set;
/// everything else as itself. `*` never crosses a `.`, so `layer*` is the
/// stage outputs, not every slot inside them.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    matches_from(&p, &n)
}

fn matches_from(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => {
            // Zero or more characters, none of them a dot.
            (0..=n.len())
                .take_while(|&k| k == 0 || n[k - 1] != '.')
                .any(|k| matches_from(&p[1..], &n[k..]))
        }
        Some('?') => n.first().is_some_and(|&c| c != '.') && matches_from(&p[1..], &n[1..]),
        Some('[') => match (p.iter().position(|&c| c == ']'), n.first()) {
            (Some(close), Some(&c)) => {
                in_set(&p[1..close], c) && matches_from(&p[close + 1..], &n[1..])
            }
            _ => false,
        },
        Some(&c) => n.first() == Some(&c) && matches_from(&p[1..], &n[1..]),
    }
}

fn in_set(set: &[char], c: char) -> bool {
    let mut i = 0;
    while i < set.len() {
        if i + 2 < set.len() && set[i + 1] == '-' {
            if (set[i]..=set[i + 2]).contains(&c) {
                return true;
            }
            i += 3;
        } else {
            if set[i] == c {
                return true;
            }
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resnet18() -> ModelSpec {
        ModelSpec::of(ModelKind::Resnet18)
    }

    fn strategy(slots: &[&str], rule: DepthRule) -> StrategySpec {
        StrategySpec {
            plugin: "droppath".into(),
            label: None,
            params: Default::default(),
            schedule: Default::default(),
            slots: Some(slots.iter().map(|s| s.to_string()).collect()),
            depth_rule: rule,
            sweep: None,
        }
    }

    #[test]
    fn patterns_match_within_one_part() {
        assert!(glob("layer*", "layer3"));
        assert!(!glob("layer*", "layer3.0.bn1"));
        assert!(glob("layer3.*.bn1", "layer3.1.bn1"));
        assert!(glob("layer[34].*.shortcut", "layer4.0.shortcut"));
        assert!(!glob("layer[34].*.shortcut", "layer2.0.shortcut"));
        assert!(glob("layer[1-2].?.branch", "layer2.1.branch"));
        assert!(!glob("layer?", "layer.3"));
        assert!(glob("heads", "heads"));
    }

    #[test]
    fn resnet18_has_36_slots_in_forward_order() {
        let names = model_slots(&resnet18());
        assert_eq!(names.len(), 4 * (2 * 4 + 1));
        assert_eq!(
            names[..5],
            [
                "layer1.0.bn1",
                "layer1.0.bn2",
                "layer1.0.shortcut",
                "layer1.0.branch",
                "layer1.1.bn1"
            ]
        );
        assert_eq!(names[8], "layer1");
        let resnet50 = model_slots(&ModelSpec::of(ModelKind::Resnet50));
        assert_eq!(resnet50.len(), 16 * 5 + 4);
        assert!(resnet50.contains(&"layer3.5.bn3".to_string()));
    }

    #[test]
    fn branches_get_linear_scales_in_forward_order() {
        let placed = placement(
            &resnet18(),
            &strategy(&["layer*.*.branch"], DepthRule::Linear),
        )
        .unwrap();
        let names: Vec<&str> = placed.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names[0], "layer1.0.branch");
        assert_eq!(names[7], "layer4.1.branch");
        let scales: Vec<f64> = placed.iter().map(|p| p.depth_scale).collect();
        let want: Vec<f64> = (0..8).map(|i| i as f64 / 7.0).collect();
        assert_eq!(scales, want);
        let down = placement(&resnet18(), &strategy(&["layer*"], DepthRule::LinearDown)).unwrap();
        let want = [1.0, 2.0 / 3.0, 1.0 / 3.0, 0.0];
        assert_eq!(down.len(), 4);
        for (p, w) in down.iter().zip(want) {
            assert!((p.depth_scale - w).abs() < 1e-12, "{p:?} against {w}");
        }
    }

    #[test]
    fn old_names_and_defaults_keep_their_meaning() {
        let m = resnet18();
        let old = placement(&m, &strategy(&["stage3", "stage4"], DepthRule::Constant)).unwrap();
        let new = placement(&m, &strategy(&["layer3", "layer4"], DepthRule::Constant)).unwrap();
        assert_eq!(old, new);
        let mut none = strategy(&[], DepthRule::Constant);
        none.slots = None;
        assert_eq!(placement(&m, &none).unwrap(), new);
        assert_eq!(canonical(&m, "stage3").as_deref(), Some("layer3"));
        assert_eq!(
            canonical(&ModelSpec::of(ModelKind::SmallCnn), "stage3"),
            None
        );
    }

    #[test]
    fn a_pattern_that_matches_nothing_is_named() {
        let err = placement(
            &resnet18(),
            &strategy(&["layer3", "layer9.*.bn1"], DepthRule::Constant),
        )
        .unwrap_err();
        assert_eq!(
            err,
            [Unmatched {
                index: 1,
                pattern: "layer9.*.bn1".into()
            }]
        );
    }

    #[test]
    fn placements_are_described_with_their_scales() {
        let m = resnet18();
        let text = describe_placement(&m, &strategy(&["layer*.*.branch"], DepthRule::Linear));
        assert_eq!(
            text.unwrap(),
            "8 slots: layer1.0.branch ×0, layer1.1.branch ×0.143, layer2.0.branch ×0.286, \
             layer2.1.branch ×0.429, layer3.0.branch ×0.571, layer3.1.branch ×0.714, \
             layer4.0.branch ×0.857, layer4.1.branch"
        );
        let mut old = strategy(&["stage3"], DepthRule::Constant);
        old.slots = None;
        assert_eq!(
            describe_placement(&m, &old).unwrap(),
            "2 slots: layer3, layer4"
        );
    }

    #[test]
    fn one_slot_takes_the_full_rate_under_any_rule() {
        for rule in [
            DepthRule::Constant,
            DepthRule::Linear,
            DepthRule::LinearDown,
        ] {
            assert_eq!(rule.scale(0, 1), 1.0, "{rule:?}");
        }
    }
}
