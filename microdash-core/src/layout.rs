//! A tenant's dashboard layout, as the tenant arranged it: per metric whether its widget is
//! hidden or pinned, how large it is and how it draws, in the order the widgets go. Metrics the
//! layout does not name (new ones) follow in the dashboard's default order, so a layout never
//! has to be updated for a widget to appear.
//!
//! [`Layout::from_input`] validates the wire form ([`crate::api::LayoutIn`]) and names every
//! field that is wrong; [`Layout::to_output`] is what `GET /api/v1/layout` answers.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::api::{FieldError, LayoutIn, LayoutOut, WidgetIn, WidgetOut};
use crate::metric::check_identifier;

/// Most widgets a layout names.
pub const MAX_LAYOUT_WIDGETS: usize = 1_000;
/// Longest metric name a layout names (the stored names' width).
pub const MAX_LAYOUT_NAME_BYTES: usize = 200;

/// How much room a widget takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WidgetSize {
    /// One column of the grid.
    #[default]
    Small,
    /// Two columns.
    Medium,
    /// The whole row.
    Large,
}

/// How a widget draws its metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WidgetKind {
    /// A time series chart.
    #[default]
    Line,
    /// The latest value, large, over a sparkline.
    Stat,
    /// A gauge from 0 to 100 (for percentages).
    Gauge,
}

impl WidgetSize {
    /// Every size, smallest first.
    pub const ALL: [WidgetSize; 3] = [WidgetSize::Small, WidgetSize::Medium, WidgetSize::Large];

    /// `small`, `medium`, `large`.
    pub fn as_str(self) -> &'static str {
        match self {
            WidgetSize::Small => "small",
            WidgetSize::Medium => "medium",
            WidgetSize::Large => "large",
        }
    }
}

impl WidgetKind {
    /// Every kind.
    pub const ALL: [WidgetKind; 3] = [WidgetKind::Line, WidgetKind::Stat, WidgetKind::Gauge];

    /// `line`, `stat`, `gauge`.
    pub fn as_str(self) -> &'static str {
        match self {
            WidgetKind::Line => "line",
            WidgetKind::Stat => "stat",
            WidgetKind::Gauge => "gauge",
        }
    }
}

impl std::str::FromStr for WidgetSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        WidgetSize::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| "must be small, medium or large".into())
    }
}

impl std::str::FromStr for WidgetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        WidgetKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| "must be line, stat or gauge".into())
    }
}

/// One widget's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WidgetSettings {
    /// The metric it shows.
    pub metric_name: String,
    /// Left off the page (listed as hidden, to show again).
    pub hidden: bool,
    /// Kept at the top, before the others.
    pub pinned: bool,
    /// How much room it takes.
    pub size: WidgetSize,
    /// How it draws.
    pub kind: WidgetKind,
}

impl From<&WidgetSettings> for WidgetOut {
    fn from(w: &WidgetSettings) -> WidgetOut {
        WidgetOut { metric_name: w.metric_name.clone(), hidden: w.hidden, pinned: w.pinned, size: w.size, kind: w.kind }
    }
}

/// The server's answer taken as it is: it validated the layout when it was saved.
impl From<&WidgetOut> for WidgetSettings {
    fn from(w: &WidgetOut) -> WidgetSettings {
        WidgetSettings {
            metric_name: w.metric_name.clone(),
            hidden: w.hidden,
            pinned: w.pinned,
            size: w.size,
            kind: w.kind,
        }
    }
}

/// A validated layout: widgets in order, each metric once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// In the order they go on the page (pinned ones first, wherever they are listed).
    pub widgets: Vec<WidgetSettings>,
}

impl Layout {
    /// Validate the wire form; every problem is named (`widgets` with the widget's index and
    /// the field), and nothing is accepted while one remains.
    pub fn from_input(input: LayoutIn) -> Result<Layout, Vec<FieldError>> {
        let Some(items) = input.widgets else {
            return Err(vec![FieldError::new(None, Some("widgets".into()), "is required")]);
        };
        let mut problems = Vec::new();
        if items.len() > MAX_LAYOUT_WIDGETS {
            problems.push(FieldError::new(
                None,
                Some("widgets".into()),
                format!("holds {} widgets; at most {MAX_LAYOUT_WIDGETS}", items.len()),
            ));
            return Err(problems);
        }
        let mut seen = HashSet::new();
        let mut widgets = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let mut problem = |field: &str, message: String| {
                problems.push(FieldError::new(Some(index), Some(field.into()), message));
            };
            let name = item.metric_name.unwrap_or_default();
            if let Err(message) = check_identifier(&name, MAX_LAYOUT_NAME_BYTES) {
                problem("metric_name", message);
            } else if !seen.insert(name.clone()) {
                problem("metric_name", format!("{name:?} is listed twice"));
            }
            let size = match item.size.as_deref().map(str::parse::<WidgetSize>) {
                None => WidgetSize::default(),
                Some(Ok(size)) => size,
                Some(Err(message)) => {
                    problem("size", message);
                    WidgetSize::default()
                }
            };
            let kind = match item.kind.as_deref().map(str::parse::<WidgetKind>) {
                None => WidgetKind::default(),
                Some(Ok(kind)) => kind,
                Some(Err(message)) => {
                    problem("kind", message);
                    WidgetKind::default()
                }
            };
            widgets.push(WidgetSettings {
                metric_name: name,
                hidden: item.hidden.unwrap_or(false),
                pinned: item.pinned.unwrap_or(false),
                size,
                kind,
            });
        }
        if problems.is_empty() { Ok(Layout { widgets }) } else { Err(problems) }
    }

    /// The wire form, with when it was last saved (RFC 3339; `None` for a layout never saved).
    pub fn to_output(&self, updated_at: Option<String>) -> LayoutOut {
        LayoutOut { widgets: self.widgets.iter().map(WidgetOut::from).collect(), updated_at }
    }
}

/// Validate a JSON body of `PUT /api/v1/layout`: like [`Layout::from_input`], and a field of the
/// wrong JSON type is named too, beside the other problems (rather than failing the whole
/// body at its first wrong byte).
pub fn parse_layout(body: &[u8]) -> Result<Layout, Vec<FieldError>> {
    use serde_json::Value;
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| vec![FieldError::new(None, None, format!("the body is not JSON: {e}"))])?;
    let Some(fields) = value.as_object() else {
        return Err(vec![FieldError::new(None, None, "the body must be an object: {\"widgets\": [...]}")]);
    };
    let items = match fields.get("widgets") {
        None | Some(Value::Null) => return Layout::from_input(LayoutIn::default()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(vec![FieldError::new(None, Some("widgets".into()), "must be an array")]),
    };
    // Each field of the right type is taken; each of the wrong type is a problem.
    let mut problems = Vec::new();
    let mut widgets = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let Some(item) = item.as_object() else {
            problems.push(FieldError::new(Some(index), None, "must be an object"));
            widgets.push(WidgetIn { metric_name: Some(format!("not-an-object-{index}")), ..WidgetIn::default() });
            continue;
        };
        let mut wrong = |field: &str, wanted: &str| {
            problems.push(FieldError::new(Some(index), Some(field.into()), format!("must be {wanted}")));
        };
        let mut text = |field: &str| match item.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => {
                wrong(field, "a string");
                None
            }
        };
        let (metric_name, size, kind) = (text("metric_name"), text("size"), text("kind"));
        let mut flag = |field: &str| match item.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(flag)) => Some(*flag),
            Some(_) => {
                wrong(field, "true or false");
                None
            }
        };
        let (hidden, pinned) = (flag("hidden"), flag("pinned"));
        // A name of the wrong type is reported once, not again as missing.
        let metric_name = metric_name
            .or_else(|| item.get("metric_name").filter(|v| !v.is_null()).map(|_| format!("wrong-type-{index}")));
        widgets.push(WidgetIn { metric_name, hidden, pinned, size, kind });
    }
    match Layout::from_input(LayoutIn { widgets: Some(widgets) }) {
        Ok(layout) if problems.is_empty() => Ok(layout),
        Ok(_) => Err(problems),
        Err(more) => {
            problems.extend(more);
            problems.sort_by_key(|p| p.index);
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WidgetIn;

    fn widget(name: &str) -> WidgetIn {
        WidgetIn { metric_name: Some(name.into()), ..WidgetIn::default() }
    }

    fn check(input: LayoutIn, expected: Result<Layout, Vec<(Option<usize>, &str)>>) {
        let got = Layout::from_input(input).map_err(|problems| {
            problems.into_iter().map(|p| (p.index, p.field.unwrap_or_default())).collect::<Vec<_>>()
        });
        let expected = expected.map_err(|e| e.into_iter().map(|(i, f)| (i, f.to_owned())).collect::<Vec<_>>());
        assert_eq!(got, expected);
    }

    #[test]
    fn layouts_are_validated_naming_every_field() {
        let full = WidgetIn {
            metric_name: Some("disk.used_percent".into()),
            hidden: Some(true),
            pinned: Some(true),
            size: Some("large".into()),
            kind: Some("gauge".into()),
        };
        check(
            LayoutIn { widgets: Some(vec![widget("cpu"), full]) },
            Ok(Layout {
                widgets: vec![
                    WidgetSettings {
                        metric_name: "cpu".into(),
                        hidden: false,
                        pinned: false,
                        size: WidgetSize::Small,
                        kind: WidgetKind::Line,
                    },
                    WidgetSettings {
                        metric_name: "disk.used_percent".into(),
                        hidden: true,
                        pinned: true,
                        size: WidgetSize::Large,
                        kind: WidgetKind::Gauge,
                    },
                ],
            }),
        );
        check(LayoutIn { widgets: Some(Vec::new()) }, Ok(Layout::default()));
        check(LayoutIn { widgets: None }, Err(vec![(None, "widgets")]));
        let bad = WidgetIn { size: Some("huge".into()), kind: Some("pie".into()), ..widget("a b") };
        check(
            LayoutIn { widgets: Some(vec![widget("cpu"), bad, widget("cpu"), WidgetIn::default()]) },
            Err(vec![
                (Some(1), "metric_name"),
                (Some(1), "size"),
                (Some(1), "kind"),
                (Some(2), "metric_name"),
                (Some(3), "metric_name"),
            ]),
        );
        let many = (0..=MAX_LAYOUT_WIDGETS).map(|i| widget(&format!("m{i}"))).collect();
        check(LayoutIn { widgets: Some(many) }, Err(vec![(None, "widgets")]));
    }

    #[test]
    fn bodies_of_the_wrong_shape_name_the_field() {
        let fields = |body: &str| {
            parse_layout(body.as_bytes())
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|p| (p.index, p.field))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields(r#"{"widgets":[{"metric_name":"cpu","hidden":"yes"},7,{"metric_name":3}]}"#),
            [(Some(0), Some("hidden".into())), (Some(1), None), (Some(2), Some("metric_name".into()))]
        );
        // Wrong types and wrong values, all at once.
        assert_eq!(
            fields(r#"{"widgets":[{"metric_name":"a b","size":"huge"},{"metric_name":"x","pinned":1}]}"#),
            [(Some(0), Some("metric_name".into())), (Some(0), Some("size".into())), (Some(1), Some("pinned".into()))]
        );
        assert_eq!(fields(r#"{"widgets":{}}"#), [(None, Some("widgets".into()))]);
        assert_eq!(fields(r#"[]"#), [(None, None)]);
        assert_eq!(fields("not json"), [(None, None)]);
        assert_eq!(fields("{}"), [(None, Some("widgets".into()))]);
        assert!(parse_layout(br#"{"widgets":[{"metric_name":"cpu","pinned":true}]}"#).is_ok());
    }

    #[test]
    fn a_layout_round_trips_through_its_wire_form() {
        let layout = Layout::from_input(LayoutIn {
            widgets: Some(vec![WidgetIn { kind: Some("stat".into()), size: Some("medium".into()), ..widget("x") }]),
        })
        .unwrap_or_default();
        let out = layout.to_output(Some("2026-12-07T00:00:00.000Z".into()));
        let json = serde_json::to_string(&out).unwrap_or_default();
        assert!(json.contains(r#""kind":"stat""#) && json.contains(r#""size":"medium""#), "{json}");
        let back: LayoutIn = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(Layout::from_input(back), Ok(layout));
    }
}
