//! One rewrite of the plans polars SQL makes, exact by construction.
//!
//! SQL's `SUM(x)` is NULL over a group with no value, so polars SQL turns
//! it into `when(x.null_count() < x.len()).then(x.sum()).otherwise(NULL)`:
//! three reductions per row where polars' `x.sum()` is one. In a GROUP
//! BY every group has a row, so over a column without nulls the two are
//! the same. Where `x` is a column that, followed back through the plan,
//! comes unchanged (selected, renamed, filtered, sorted, through an inner
//! join or the left side of a left join) from an in-memory table (the
//! columns a query worker keeps) holding no null in it, the group-by's
//! `SUM(x)` becomes `x.sum()`. Anything else — an expression, the side of
//! a join that may be null, a file scan, a SUM outside a GROUP BY — is
//! left as polars SQL wrote it.

use polars::prelude::*;
use std::sync::Arc;

/// `lf` with each SUM that can be one reduction made one.
pub fn one_reduction_sums(mut lf: LazyFrame) -> LazyFrame {
    lf.logical_plan = plan(&lf.logical_plan);
    lf
}

fn plan(p: &DslPlan) -> DslPlan {
    let sub = |i: &Arc<DslPlan>| Arc::new(plan(i));
    match p {
        DslPlan::GroupBy {
            input,
            keys,
            predicates,
            aggs,
            maintain_order,
            options,
            apply,
        } => {
            let input = sub(input);
            let aggs = if keys.is_empty() {
                aggs.clone()
            } else {
                aggs.iter().map(|a| sums(a, &input)).collect()
            };
            DslPlan::GroupBy {
                input,
                keys: keys.clone(),
                predicates: predicates.clone(),
                aggs,
                maintain_order: *maintain_order,
                options: options.clone(),
                apply: apply.clone(),
            }
        }
        DslPlan::Filter { input, predicate } => DslPlan::Filter {
            input: sub(input),
            predicate: predicate.clone(),
        },
        DslPlan::Select {
            expr,
            input,
            options,
        } => DslPlan::Select {
            expr: expr.clone(),
            input: sub(input),
            options: *options,
        },
        DslPlan::HStack {
            input,
            exprs,
            options,
        } => DslPlan::HStack {
            input: sub(input),
            exprs: exprs.clone(),
            options: *options,
        },
        DslPlan::Sort {
            input,
            by_column,
            slice,
            sort_options,
        } => DslPlan::Sort {
            input: sub(input),
            by_column: by_column.clone(),
            slice: *slice,
            sort_options: sort_options.clone(),
        },
        DslPlan::Slice { input, offset, len } => DslPlan::Slice {
            input: sub(input),
            offset: *offset,
            len: *len,
        },
        DslPlan::Join {
            input_left,
            input_right,
            left_on,
            right_on,
            predicates,
            options,
        } => DslPlan::Join {
            input_left: sub(input_left),
            input_right: sub(input_right),
            left_on: left_on.clone(),
            right_on: right_on.clone(),
            predicates: predicates.clone(),
            options: options.clone(),
        },
        DslPlan::Union { inputs, args } => DslPlan::Union {
            inputs: inputs.iter().map(plan).collect(),
            args: *args,
        },
        // A part polars SQL has already converted: as its DSL again (the
        // conversion it holds would not see the rewrite).
        DslPlan::IR { dsl, .. } => plan(dsl),
        other => other.clone(),
    }
}

/// `e` with polars SQL's SUM over a column without nulls in `input` as
/// one `sum`.
fn sums(e: &Expr, input: &DslPlan) -> Expr {
    match e {
        Expr::Alias(inner, name) => Expr::Alias(Arc::new(sums(inner, input)), name.clone()),
        Expr::Ternary {
            predicate,
            truthy,
            falsy,
        } => match sql_sum_of(predicate, truthy, falsy) {
            Some(c) if no_nulls(input, c) => Expr::Column(c.clone()).sum(),
            _ => e.clone(),
        },
        _ => e.clone(),
    }
}

/// The column `x` when `when(predicate).then(truthy).otherwise(falsy)` is
/// polars SQL's `SUM(x)`: `x.null_count() < x.len()`, `x.sum()`, NULL.
fn sql_sum_of<'a>(predicate: &'a Expr, truthy: &Expr, falsy: &Expr) -> Option<&'a PlSmallStr> {
    let Expr::BinaryExpr {
        left,
        op: Operator::Lt,
        right,
    } = predicate
    else {
        return None;
    };
    let Expr::Function { input, function } = left.as_ref() else {
        return None;
    };
    let [Expr::Column(c)] = input.as_slice() else {
        return None;
    };
    let x = Expr::Column(c.clone());
    let is_null = |e: &Expr| matches!(e, Expr::Literal(l) if l.is_null());
    (*function == FunctionExpr::NullCount
        && right.as_ref() == &x.clone().len()
        && truthy == &x.sum()
        && is_null(falsy))
    .then_some(c)
}

/// Whether column `c` of `p`'s output has no null: followed back through
/// the plan unchanged (selected, renamed, filtered, sorted, sliced) to
/// in-memory tables, each with no null in it.
fn no_nulls(p: &DslPlan, c: &str) -> bool {
    match p {
        DslPlan::DataFrameScan { df, .. } => df
            .column(c)
            .is_ok_and(|col| col.null_count() == 0 && !col.dtype().is_null()),
        DslPlan::Select { expr, input, .. } => {
            source_column(expr, c).is_some_and(|s| no_nulls(input, s))
        }
        DslPlan::HStack { input, exprs, .. } => {
            if exprs.iter().any(|e| output_name(e) == Some(c)) {
                source_column(exprs, c).is_some_and(|s| no_nulls(input, s))
            } else {
                no_nulls(input, c)
            }
        }
        DslPlan::Filter { input, .. }
        | DslPlan::Sort { input, .. }
        | DslPlan::Slice { input, .. }
        | DslPlan::Cache { input, .. }
        | DslPlan::IR { dsl: input, .. } => no_nulls(input, c),
        DslPlan::Union { inputs, .. } => {
            !inputs.is_empty() && inputs.iter().all(|i| no_nulls(i, c))
        }
        // A column of the left side keeps its name and, in an inner or a
        // left join, its rows' values; one of the right side (not renamed:
        // the left has no such column) only in an inner join.
        DslPlan::Join {
            input_left,
            input_right,
            options,
            ..
        } => {
            let how = &options.args.how;
            if has_column(input_left, c) {
                matches!(how, JoinType::Inner | JoinType::Left) && no_nulls(input_left, c)
            } else {
                matches!(how, JoinType::Inner)
                    && has_column(input_right, c)
                    && no_nulls(input_right, c)
            }
        }
        _ => false,
    }
}

/// Whether `p`'s output has a column `c`.
fn has_column(p: &DslPlan, c: &str) -> bool {
    LazyFrame::from(p.clone())
        .collect_schema()
        .is_ok_and(|s| s.contains(c))
}

/// The name of the input column that `exprs` outputs as `c` unchanged
/// (`col(s)` or `col(s).alias(c)`), if one does.
fn source_column<'a>(exprs: &'a [Expr], c: &str) -> Option<&'a str> {
    exprs.iter().find_map(|e| match e {
        Expr::Column(s) if s.as_str() == c => Some(s.as_str()),
        Expr::Alias(inner, name) if name.as_str() == c => match inner.as_ref() {
            Expr::Column(s) => Some(s.as_str()),
            _ => None,
        },
        _ => None,
    })
}

/// The name `e` outputs, when it says so plainly.
fn output_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(s) | Expr::Alias(_, s) => Some(s.as_str()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> DataFrame {
        df!(
            "node" => ["a", "a", "b", "b", "c"],
            "minute" => [1i64, 61, 2, 3, 4],
            "n" => [1u64, 2, 3, 4, 5],
            "gaps" => [Some(1u64), None, None, None, Some(7)],
        )
        .expect("frame")
    }

    /// The answer of `sql` over `t` (and `streets`, one for a and b) with
    /// and without the rewrite, and how many SQL SUMs are left in the
    /// rewritten plan.
    fn both(sql: &str) -> (DataFrame, DataFrame, usize) {
        let mut ctx = polars::sql::SQLContext::new();
        ctx.register("t", table().lazy());
        let streets = df!("node" => ["a", "b"], "street" => ["s1", "s2"], "k" => [1u64, 2]);
        ctx.register("streets", streets.expect("streets").lazy());
        let lf = ctx.execute(sql).expect("sql");
        let rewritten = one_reduction_sums(lf.clone());
        let left = format!("{:?}", rewritten.logical_plan)
            .matches("null_count")
            .count();
        let plain = lf.collect().expect("as written");
        let fast = rewritten.collect().expect("rewritten");
        (plain, fast, left)
    }

    #[test]
    fn a_grouped_sum_over_a_column_without_nulls_is_one_reduction_and_the_same() {
        let (plain, fast, left) = both(
            "SELECT node, hour, sum(n) AS n FROM (SELECT node, minute - minute % 60 AS hour, n FROM t) \
             GROUP BY node, hour ORDER BY node, hour",
        );
        assert_eq!(left, 0, "rewritten");
        assert!(plain.equals_missing(&fast), "{plain}\n{fast}");
        assert_eq!(fast.height(), 4);
    }

    #[test]
    fn through_an_inner_join_too_but_not_the_null_side_of_a_left_join() {
        let (plain, fast, left) = both(
            "SELECT r.street, sum(t.n) AS n, sum(r.k) AS k FROM t JOIN streets r ON t.node = r.node \
             GROUP BY 1 ORDER BY 1",
        );
        assert_eq!(left, 0, "rewritten");
        assert!(plain.equals_missing(&fast), "{plain}\n{fast}");
        let (plain, fast, left) = both(
            "SELECT t.node, sum(t.n) AS n, sum(r.k) AS k FROM t LEFT JOIN streets r ON t.node = r.node \
             GROUP BY 1 ORDER BY 1",
        );
        assert_eq!(left, 1, "r.k kept");
        assert!(plain.equals_missing(&fast), "{plain}\n{fast}");
        assert_eq!(
            fast.column("k").expect("k").null_count(),
            1,
            "c has no street"
        );
    }

    #[test]
    fn a_sum_that_may_meet_nulls_keeps_sql_s_null() {
        // Group b holds only nulls: SQL says NULL, polars' sum 0.
        let (plain, fast, left) =
            both("SELECT node, sum(gaps) AS g FROM t GROUP BY node ORDER BY node");
        assert_eq!(left, 1, "kept");
        assert!(plain.equals_missing(&fast));
        assert_eq!(fast.column("g").expect("g").null_count(), 1);
        // An expression, or no GROUP BY (an empty table sums to NULL): kept.
        for sql in [
            "SELECT node, sum(n + 1) AS g FROM t GROUP BY node ORDER BY node",
            "SELECT sum(n) AS g FROM t WHERE n > 100",
        ] {
            let (plain, fast, left) = both(sql);
            assert_eq!(left, 1, "{sql}");
            assert!(plain.equals_missing(&fast), "{sql}");
        }
    }
}
