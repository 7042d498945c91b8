use super::number_question_marks;

#[test]
fn question_marks_become_numbered_parameters() {
    assert_eq!(number_question_marks("SELECT a FROM t WHERE b > ? AND c = ?"), "SELECT a FROM t WHERE b > $1 AND c = $2");
    assert_eq!(number_question_marks("SELECT '?' AS q, \"x?\" FROM t -- why?\nWHERE a = ?"), "SELECT '?' AS q, \"x?\" FROM t -- why?\nWHERE a = $1");
    assert_eq!(number_question_marks("SELECT 1"), "SELECT 1");
    // Escaped quotes, several lines and characters of several bytes stay as written.
    assert_eq!(number_question_marks("SELECT 'O''Brien' AS n, ? AS p"), "SELECT 'O''Brien' AS n, $1 AS p");
    assert_eq!(number_question_marks("SELECT 'Ёж''s'\n, ?,\n  'a?' || ?"), "SELECT 'Ёж''s'\n, $1,\n  'a?' || $2");
}

#[test]
fn expression_depth_counts_chains_and_brackets_not_lists() {
    use super::expression_depth;
    let chain = format!("SELECT {}", vec!["1"; 1000].join("+"));
    assert!(expression_depth(&chain) >= 999, "{}", expression_depth(&chain));
    let list = format!("SELECT * FROM t WHERE a IN ({})", vec!["1"; 5000].join(","));
    assert!(expression_depth(&list) < 10, "{}", expression_depth(&list));
    let nested = format!("SELECT {}1{}", "(".repeat(300), ")".repeat(300));
    assert!(expression_depth(&nested) >= 300);
    // A clause keyword starts a new expression.
    assert!(expression_depth("SELECT a + b FROM t WHERE c = d AND e = f ORDER BY a") < 6);
    // Chains inside brackets followed by chains outside: the tree is as deep as the sum,
    // not the longest chain (an estimate of the longest chain let 40 levels of 150
    // operators, 6,000 deep, through).
    let mut nested = "1".to_string();
    for _ in 0..40 {
        nested = format!("({nested}{})", "+1".repeat(150));
    }
    assert!(expression_depth(&format!("SELECT {nested}")) >= 40 * 150, "{}", expression_depth(&format!("SELECT {nested}")));
    // Operators of any kind count, known or not, and subscripts nest (a review found
    // `XOR`, `#` and `[1][1]…` chains passing an estimate of a fixed operator list).
    for chain in [" XOR 1", " # 1", " OPERATOR(+) 1", " && 1", "[1]", "::int", ".x"] {
        let sql = format!("SELECT 1{}", chain.repeat(300));
        assert!(expression_depth(&sql) >= 300, "{chain}: {}", expression_depth(&sql));
    }
    // A chain that one dialect reads as a string and the other as an expression.
    let sql = format!("SELECT 1 AS `a'`, 1{} AS `b'`", "+1".repeat(300));
    assert!(expression_depth(&sql) >= 300, "{}", expression_depth(&sql));
    // Unbalanced or untokenizable text does not panic.
    assert!(expression_depth(&")".repeat(1000)) < 3);
    assert!(expression_depth("SELECT 'unterminated ((((") >= 1);
}

/// A random expression and the depth of its tree.
fn random_expression(rng: &mut rand_chacha::ChaCha8Rng, budget: usize) -> (String, usize) {
    use rand::Rng;
    if budget == 0 || rng.random_bool(0.2) {
        return (["1", "a", "'x''y'", "NULL", "2.5"][rng.random_range(0..5)].to_string(), 1);
    }
    match rng.random_range(0..5) {
        0 => {
            // A left-deep chain, as generated filters are.
            let n = rng.random_range(2..40);
            let op = [" + ", " AND ", " OR ", " || ", " * "][rng.random_range(0..5)];
            let mut deepest = 0;
            let terms: Vec<String> = (0..n)
                .map(|_| {
                    let (t, d) = random_expression(rng, budget / 4);
                    deepest = deepest.max(d);
                    t
                })
                .collect();
            (terms.join(op), n - 1 + deepest)
        }
        1 => {
            let (t, d) = random_expression(rng, budget - 1);
            (format!("({t})"), d)
        }
        2 => {
            let (t, d) = random_expression(rng, budget - 1);
            (format!("abs({t})"), d + 1)
        }
        3 => {
            let (a, da) = random_expression(rng, budget / 2);
            let (b, db) = random_expression(rng, budget / 2);
            // Case { IsNull(a), b, 0 }.
            (format!("CASE WHEN {a} IS NULL THEN {b} ELSE 0 END"), (da + 1).max(db) + 1)
        }
        _ => {
            let (a, da) = random_expression(rng, budget / 2);
            let (b, db) = random_expression(rng, budget / 2);
            (format!("{a} = {b}"), da.max(db) + 1)
        }
    }
}

#[test]
fn the_depth_estimate_is_never_below_the_real_depth() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for _ in 0..2_000 {
        let (expr, depth) = random_expression(&mut rng, 60);
        let sql = format!("SELECT {expr} FROM t");
        assert!(super::expression_depth(&sql) >= depth, "estimate {} < depth {depth} for {sql}", super::expression_depth(&sql));
    }
}

#[test]
fn any_text_is_estimated_without_a_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let pieces = ["(", ")", "[", "]", "+", "-", "'", "\"", ";", ",", "--", "/*", "*/", "AND", "SELECT", "$1", "?", "ё", " ", "\n", "E'\\", "$$"];
    for _ in 0..5_000 {
        let n = rng.random_range(0..200);
        let text: String = (0..n).map(|_| pieces[rng.random_range(0..pieces.len())]).collect();
        let _ = super::expression_depth(&text);
        let _ = super::number_question_marks(&text);
    }
}

/// SQL under the limits plans (or fails with an error) on a 2 MiB stack, the size of the
/// server's smallest thread in a debug build; SQL over them is refused before parsing.
#[test]
fn sql_into_the_planner_stays_within_the_limits() {
    use rand::{Rng, SeedableRng};
    let planned = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let limits = super::TextLimits { max_bytes: 100_000, max_depth: salespulse_config::config::Limits::default().max_expression_depth };
                let ctx = datafusion::prelude::SessionContext::new();
                ctx.register_batch("t", arrow::array::RecordBatch::try_from_iter([("a", std::sync::Arc::new(arrow::array::Int64Array::from(vec![1, 2])) as arrow::array::ArrayRef)]).expect("batch")).expect("table");
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
                let (mut refused, mut ran) = (0, 0);
                for _ in 0..300 {
                    let (expr, _) = random_expression(&mut rng, 120);
                    let statements = rng.random_range(1..3);
                    let sql = vec![format!("SELECT {expr} AS x FROM t"); statements].join("; ");
                    match super::plan_query(&ctx, &sql, limits, || None).await {
                        Ok(df) => {
                            assert_eq!(statements, 1);
                            let _ = df.collect().await;
                            ran += 1;
                        }
                        Err(super::QueryError::TooDeep { .. } | super::QueryError::TooLong { .. }) => refused += 1,
                        Err(_) => {}
                    }
                }
                (refused, ran)
            })
        })
        .expect("thread")
        .join()
        .expect("no stack overflow or panic");
    assert!(planned.0 > 0 && planned.1 > 0, "both kinds were generated: {planned:?}");
}

/// Strings inside lists and structs go out as `Utf8` too: `array_agg` over a `crm` string
/// column is a list of the engine's `Utf8View`.
#[test]
fn nested_engine_strings_go_out_as_utf8() {
    use arrow::datatypes::{DataType, Field, Fields};
    use std::sync::Arc;
    let list = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
    assert_eq!(super::client_type(&list(DataType::Utf8View)), Some(list(DataType::Utf8)));
    assert_eq!(super::client_type(&list(DataType::Int64)), None);
    let fields = |t: DataType| DataType::Struct(Fields::from(vec![Field::new("id", DataType::Int64, false), Field::new("name", t, true)]));
    assert_eq!(super::client_type(&fields(DataType::Utf8View)), Some(fields(DataType::Utf8)));
    assert_eq!(super::client_type(&fields(DataType::Utf8)), None);
}
