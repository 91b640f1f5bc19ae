//! PromQL as the rules read it (prometheus-adapter's metricsQuery, KEDA's
//! Prometheus trigger): the vector selectors of a query, the metric it
//! reads first, and the aggregation at its top.

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, AggregateExpr, Expr, LabelModifier, VectorSelector};
use promql_parser::util::{walk_expr, ExprVisitor};

/// Every vector selector of an expression, those inside range selectors
/// included, in the order they are written.
pub fn selectors(expr: &Expr) -> Vec<VectorSelector> {
    collect_selectors(expr, true)
}

/// The vector selectors read as instant values: not the inside of a range
/// (`x[5m]`, which only a function such as `rate` can use).
pub fn instant_selectors(expr: &Expr) -> Vec<VectorSelector> {
    collect_selectors(expr, false)
}

fn collect_selectors(expr: &Expr, ranges: bool) -> Vec<VectorSelector> {
    struct Collect {
        found: Vec<VectorSelector>,
        ranges: bool,
    }
    impl ExprVisitor for Collect {
        type Error = String;

        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
            match expr {
                Expr::VectorSelector(selector) => self.found.push(selector.clone()),
                Expr::MatrixSelector(matrix) if self.ranges => self.found.push(matrix.vs.clone()),
                // A range's selector is its own: do not descend.
                Expr::MatrixSelector(_) => return Ok(false),
                _ => {}
            }
            Ok(true)
        }
    }
    let mut collect = Collect {
        found: Vec::new(),
        ranges,
    };
    let _ = walk_expr(&mut collect, expr);
    collect.found
}

/// The metric name a selector reads: its name, or its `__name__` matcher.
pub fn selector_name(selector: &VectorSelector) -> Option<&str> {
    selector.name.as_deref().or_else(|| {
        selector
            .matchers
            .matchers
            .iter()
            .find(|matcher| matcher.name == "__name__")
            .map(|matcher| matcher.value.as_str())
    })
}

/// The first metric a query reads, as a slice of the query text (so that
/// it borrows from the manifest). `None` when the query does not parse.
pub fn first_metric_name(query: &str) -> Option<&str> {
    let expr = parser::parse(query).ok()?;
    let selectors = selectors(&expr);
    let name = selectors.iter().find_map(selector_name)?;
    let start = query.find(name)?;
    query.get(start..start + name.len())
}

/// The aggregation at the top of an expression, through parentheses.
pub fn top_aggregation(expr: &Expr) -> Option<&AggregateExpr> {
    match expr {
        Expr::Aggregate(aggregate) => Some(aggregate),
        Expr::Paren(paren) => top_aggregation(&paren.expr),
        _ => None,
    }
}

/// How many series an expression returns, as far as its shape tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// One series (or a scalar): an aggregation without grouping.
    One,
    /// Possibly several: a bare selector, a grouping by labels the query
    /// does not pin to one value.
    Many,
    /// The shape does not tell (topk, a function this reading does not
    /// know, vector matching).
    Unknown,
}

/// Functions that keep their vector argument's series one for one.
const ELEMENTWISE: &[&str] = &[
    "abs",
    "ceil",
    "floor",
    "round",
    "exp",
    "ln",
    "log2",
    "log10",
    "sqrt",
    "clamp",
    "clamp_min",
    "clamp_max",
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "predict_linear",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "quantile_over_time",
    "stddev_over_time",
    "sgn",
];

/// The series an expression returns.
pub fn series(expr: &Expr) -> Series {
    match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Series::One,
        Expr::VectorSelector(_) | Expr::MatrixSelector(_) => Series::Many,
        Expr::Paren(paren) => series(&paren.expr),
        Expr::Unary(unary) => series(&unary.expr),
        Expr::Subquery(subquery) => series(&subquery.expr),
        Expr::Aggregate(aggregate) => {
            let op = aggregate.op.to_string();
            if matches!(op.as_str(), "topk" | "bottomk" | "limitk" | "limit_ratio") {
                return Series::Unknown;
            }
            match &aggregate.modifier {
                None => Series::One,
                Some(LabelModifier::Include(labels)) => {
                    let pinned = labels
                        .labels
                        .iter()
                        .all(|label| pins(&aggregate.expr, label));
                    if pinned {
                        Series::One
                    } else {
                        Series::Many
                    }
                }
                Some(LabelModifier::Exclude(_)) => Series::Many,
            }
        }
        Expr::Call(call) => match call.func.name {
            "scalar" | "time" | "vector" | "absent" | "absent_over_time" => Series::One,
            "histogram_quantile" => match call.args.args.get(1).map(|arg| arg.as_ref()) {
                // A quantile per remaining group: grouping by `le` alone is
                // one series.
                Some(inner) => histogram_series(inner),
                None => Series::Unknown,
            },
            name if ELEMENTWISE.contains(&name) => call
                .args
                .args
                .iter()
                .map(|arg| series(arg))
                .find(|found| *found != Series::One)
                .unwrap_or(Series::One),
            _ => Series::Unknown,
        },
        Expr::Binary(binary) => match (series(&binary.lhs), series(&binary.rhs)) {
            (Series::One, Series::One) => Series::One,
            (Series::Many, _) | (_, Series::Many) if binary.modifier.is_none() => Series::Many,
            _ => Series::Unknown,
        },
        Expr::Extension(_) => Series::Unknown,
    }
}

fn histogram_series(inner: &Expr) -> Series {
    match inner {
        Expr::Paren(paren) => histogram_series(&paren.expr),
        Expr::Aggregate(aggregate) => match &aggregate.modifier {
            Some(LabelModifier::Include(labels)) => {
                let others_pinned = labels
                    .labels
                    .iter()
                    .filter(|label| label.as_str() != "le")
                    .all(|label| pins(&aggregate.expr, label));
                if others_pinned {
                    Series::One
                } else {
                    Series::Many
                }
            }
            _ => Series::Unknown,
        },
        _ => Series::Unknown,
    }
}

/// Whether every selector of an expression pins a label to one value.
pub fn pins(expr: &Expr, label: &str) -> bool {
    let found = selectors(expr);
    !found.is_empty()
        && found.iter().all(|selector| {
            selector
                .matchers
                .matchers
                .iter()
                .any(|matcher| matcher.name == label && matcher.op == MatchOp::Equal)
        })
}

/// Whether a selector has a matcher on one of these labels that narrows it
/// (`=`, or `=~` without wildcards).
pub fn filters_on(selector: &VectorSelector, labels: &[String]) -> bool {
    selector.matchers.matchers.iter().any(|matcher| {
        labels.contains(&matcher.name)
            && match matcher.op {
                MatchOp::Equal => !matcher.value.is_empty(),
                MatchOp::Re(_) => !matcher.value.contains(".*") && !matcher.value.contains(".+"),
                _ => false,
            }
    })
}
