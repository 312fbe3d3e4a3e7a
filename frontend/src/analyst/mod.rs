//! `/analyst`: history as asked then. A query builder (metrics, level,
//! street, zone class, range, bucket) over `GET /api/v1/query`, a SQL box
//! over `GET /api/v1/sql` (the tables `history`, `nodes`, `zones`,
//! `incidents`, `orders`), the answer as a line chart in SVG (one line per
//! group and metric; bars for one series or a label → number answer) and a
//! table, export buttons (CSV, Parquet: the same query as a download), and
//! a URL that reproduces the query when shared (every field, or the SQL,
//! is in it).

use gridwatch_model::api::{HISTORY_COUNTS, Hierarchy};
use leptos::prelude::*;
use serde::Deserialize;

use crate::i18n::{name, tr};
use crate::route::{query, set_query};

mod chart;

use chart::Chart;
#[cfg(test)]
use chart::series;

/// Table rows shown (the download has them all).
const TABLE_MAX: usize = 500;

/// The answer of `/api/v1/query` in JSON.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Answer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// The fields of a query, as the URL carries them.
#[derive(Clone, Debug, PartialEq)]
pub struct Fields {
    pub metric: String,
    pub level: String,
    pub street: String,
    pub zone: String,
    pub from: String,
    pub to: String,
    pub bucket: String,
}

/// `s` percent-encoded for a query string (all but the unreserved).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The SQL answer's URL in `format`.
pub fn sql_url(sql: &str, format: &str) -> String {
    format!("/api/v1/sql?sql={}&format={format}", encode(sql))
}

impl Fields {
    /// From the page's URL, with defaults for what it lacks.
    fn from_url() -> Fields {
        let q = |k: &str, d: &str| {
            query(k)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| d.into())
        };
        Fields {
            metric: q("metric", "samples"),
            level: q("level", "street"),
            street: q("street", ""),
            zone: q("zone", ""),
            from: q("from", "2022-10-15T00:00"),
            to: q("to", "2022-10-16T00:00"),
            bucket: q("bucket", "1h"),
        }
    }

    /// The query string (without `format`).
    pub fn query_string(&self) -> String {
        let mut s = format!(
            "metric={}&level={}&from={}&to={}&bucket={}",
            self.metric, self.level, self.from, self.to, self.bucket
        );
        if !self.street.is_empty() {
            s.push_str(&format!("&street={}", self.street));
        }
        if !self.zone.is_empty() {
            s.push_str(&format!("&zone={}", self.zone));
        }
        s
    }

    /// Writes every field into the page's URL.
    fn to_url(&self) {
        for (k, v) in [
            ("metric", &self.metric),
            ("level", &self.level),
            ("street", &self.street),
            ("zone", &self.zone),
            ("from", &self.from),
            ("to", &self.to),
            ("bucket", &self.bucket),
        ] {
            set_query(k, v);
        }
    }
}

/// A labelled `<select>` bound to `value`.
fn select(
    label: &'static str,
    id: &'static str,
    value: RwSignal<String>,
    options: Vec<(String, String)>,
) -> impl IntoView {
    view! {
        <label class="analyst-field">{label}
            <select data-testid=id prop:value=move || value.get()
                on:change=move |ev| value.set(event_target_value(&ev))>
                {options.into_iter().map(|(v, text)| {
                    let selected = value.get_untracked() == v;
                    view! { <option value=v selected=selected>{text}</option> }
                }).collect_view()}
            </select>
        </label>
    }
}

/// The page.
#[component]
pub fn AnalystPage() -> impl IntoView {
    let start = Fields::from_url();
    let metric = RwSignal::new(start.metric.clone());
    let level = RwSignal::new(start.level.clone());
    let street = RwSignal::new(start.street.clone());
    let zone = RwSignal::new(start.zone.clone());
    let from = RwSignal::new(start.from.clone());
    let to = RwSignal::new(start.to.clone());
    let bucket = RwSignal::new(start.bucket.clone());
    let sql = RwSignal::new(query("sql").unwrap_or_default());
    let fields = move || Fields {
        metric: metric.get(),
        level: level.get(),
        street: street.get(),
        zone: zone.get(),
        from: from.get(),
        to: to.get(),
        bucket: bucket.get(),
    };
    let answer: RwSignal<Option<Answer>> = RwSignal::new(None);
    let error: RwSignal<Option<String>> = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let streets: RwSignal<Vec<(String, String)>> = RwSignal::new(Vec::new());
    leptos::task::spawn_local(async move {
        if let Some(h) = crate::live::fetch::<Hierarchy>("/api/v1/hierarchy").await {
            streets.set(
                h.streets
                    .iter()
                    .map(|s| {
                        let id = s.node.rsplit('/').next().unwrap_or_default().to_string();
                        (id, name(&s.name, &s.name_en).to_string())
                    })
                    .collect(),
            );
        }
    });
    // The builder's query, or (`with_sql`) the SQL box's statement.
    let run_as = move |with_sql: bool| {
        let f = untrack(fields);
        let url = if with_sql {
            let q = sql.get_untracked();
            set_query("sql", &q);
            sql_url(&q, "json")
        } else {
            f.to_url();
            set_query("sql", "");
            format!("/api/v1/query?{}", f.query_string())
        };
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match crate::signin::get_json::<Answer>(&url).await {
                Ok(a) => answer.set(Some(a)),
                Err(e) => {
                    answer.set(None);
                    error.set(Some(e));
                }
            }
            busy.set(false);
        });
    };
    let run = move || run_as(false);
    // The shared URL runs at once (its SQL, when it has one).
    run_as(!sql.get_untracked().trim().is_empty());
    let memo = Memo::new(move |_| answer.get());
    let href =
        move |format: &str| format!("/api/v1/query?{}&format={format}", fields().query_string());
    let sql_href = move |format: &str| sql_url(&sql.get(), format);
    // Several metrics: a box each, the URL's `metric=a,b`.
    let has = move |m: &str| metric.with(|v| v.split(',').any(|x| x == m));
    let toggle = move |m: &'static str| {
        let mut v: Vec<String> = metric
            .get_untracked()
            .split(',')
            .filter(|x| !x.is_empty() && *x != m)
            .map(String::from)
            .collect();
        if !has(m) {
            v.push(m.to_string());
        }
        // In HISTORY_COUNTS' order, so the URL is the same however built.
        v.sort_by_key(|x| HISTORY_COUNTS.iter().position(|c| c == x));
        metric.set(v.join(","));
    };
    let levels = [
        ("district", "区", "district"),
        ("street", "街道", "street"),
        ("community", "社区/村", "community"),
        ("grid", "网格", "grid"),
        ("microgrid", "微网格", "micro-grid"),
    ]
    .map(|(v, zh, en)| (v.to_string(), tr(zh, en).to_string()))
    .to_vec();
    let zones = [
        ("", "全部", "all"),
        ("sealed", "封控区", "sealed"),
        ("control", "管控区", "control"),
        ("prevention", "防范区", "prevention"),
        ("normal", "常态", "normal"),
    ]
    .map(|(v, zh, en)| (v.to_string(), tr(zh, en).to_string()))
    .to_vec();
    let buckets = ["1m", "10m", "1h", "1d"]
        .map(|b| (b.to_string(), b.to_string()))
        .to_vec();
    view! {
        <main class="analyst" data-testid="analyst">
            <h1>{move || tr("历史分析", "History")}</h1>
            <form class="analyst-form" on:submit=move |ev| { ev.prevent_default(); run(); }>
                <fieldset class="analyst-metrics" data-testid="q-metric">
                    <legend>"指标 metrics"</legend>
                    {HISTORY_COUNTS.iter().map(|&m| view! {
                        <label class="analyst-metric">
                            <input type="checkbox" value=m prop:checked=move || has(m)
                                on:change=move |_| toggle(m)/>
                            {m}
                        </label>
                    }).collect_view()}
                </fieldset>
                {select("层级 level", "q-level", level, levels)}
                <label class="analyst-field">"街道 street"
                    <select data-testid="q-street" prop:value=move || street.get()
                        on:change=move |ev| street.set(event_target_value(&ev))>
                        <option value="">{move || tr("全区", "all")}</option>
                        {move || streets.get().into_iter().map(|(v, text)| {
                            let selected = street.get_untracked() == v;
                            view! { <option value=v selected=selected>{text}</option> }
                        }).collect_view()}
                    </select>
                </label>
                {select("区类 zone", "q-zone", zone, zones)}
                <label class="analyst-field">"从 from"
                    <input type="datetime-local" data-testid="q-from" prop:value=move || from.get()
                        on:change=move |ev| from.set(event_target_value(&ev))/>
                </label>
                <label class="analyst-field">"到 to"
                    <input type="datetime-local" data-testid="q-to" prop:value=move || to.get()
                        on:change=move |ev| to.set(event_target_value(&ev))/>
                </label>
                {select("粒度 bucket", "q-bucket", bucket, buckets)}
                <button type="submit" data-testid="q-run" disabled=move || busy.get()>{move || tr("查询", "Run")}</button>
                <a class="button" data-testid="q-csv" href=move || href("csv") download>"CSV"</a>
                <a class="button" data-testid="q-parquet" href=move || href("parquet") download>"Parquet"</a>
            </form>
            <form class="analyst-sql" on:submit=move |ev| { ev.prevent_default(); run_as(true); }>
                <label class="analyst-field analyst-sql-box">"SQL (history, nodes, zones, incidents, orders)"
                    <textarea data-testid="q-sql" rows="3" spellcheck="false"
                        placeholder="SELECT n.street, sum(h.samples) AS samples FROM history h JOIN nodes n ON h.node = n.node GROUP BY n.street"
                        prop:value=move || sql.get()
                        on:input=move |ev| sql.set(event_target_value(&ev))></textarea>
                </label>
                <button type="submit" data-testid="q-sql-run" disabled=move || busy.get() || sql.with(|q| q.trim().is_empty())>{move || tr("运行 SQL", "Run SQL")}</button>
                <a class="button" data-testid="q-sql-csv" href=move || sql_href("csv") download>"CSV"</a>
                <a class="button" data-testid="q-sql-parquet" href=move || sql_href("parquet") download>"Parquet"</a>
            </form>
            <Show when=move || error.with(Option::is_some)>
                <p class="analyst-error" data-testid="q-error">{move || error.get().unwrap_or_default()}</p>
            </Show>
            <Chart answer=memo/>
            <p class="analyst-count" data-testid="q-rows">{move || answer.with(|a| a.as_ref().map(|a| format!("{} {}", a.rows.len(), tr("行", "rows"))).unwrap_or_default())}</p>
            <table class="analyst-table" data-testid="q-table">
                <thead><tr>{move || answer.with(|a| a.as_ref().map(|a| a.columns.iter().map(|c| view! { <th>{c.clone()}</th> }).collect_view()))}</tr></thead>
                <tbody>
                    {move || answer.with(|a| a.as_ref().map(|a| a.rows.iter().take(TABLE_MAX).map(|r| view! {
                        <tr>{r.iter().map(|v| view! { <td>{match v { serde_json::Value::String(s) => s.clone(), other => other.to_string() }}</td> }).collect_view()}</tr>
                    }).collect_view()))}
                </tbody>
            </table>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn series_follow_groups_and_the_largest_lead() {
        let a = Answer {
            columns: vec!["time".into(), "street".into(), "samples".into()],
            rows: vec![
                vec![json!("t1"), json!("beilun/a"), json!(1)],
                vec![json!("t1"), json!("beilun/b"), json!(5)],
                vec![json!("t2"), json!("beilun/a"), json!(2)],
            ],
        };
        let s = series(&a);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].group, "beilun/b");
        assert_eq!(s[1].points, [("t1".into(), 1.0), ("t2".into(), 2.0)]);
        let f = Fields {
            metric: "samples".into(),
            level: "street".into(),
            street: "daqi".into(),
            zone: String::new(),
            from: "2022-10-15T00:00".into(),
            to: "2022-10-16T00:00".into(),
            bucket: "1h".into(),
        };
        assert_eq!(
            f.query_string(),
            "metric=samples&level=street&from=2022-10-15T00:00&to=2022-10-16T00:00&bucket=1h&street=daqi"
        );
    }
}
