//! One digest: the open incidents and supervision orders a responsible
//! group answers for at a full hour, overdue first, each with the time
//! left, as DingTalk markdown within its size limit.
//!
//! An item belongs to the nearest group at or above the node answering
//! for it: an incident's holder (its grid, the district for level 3 and
//! above, or where it was transferred), an order's micro-grid.

use gridwatch_model::api::{OpenIncident, OpenOrder};
use gridwatch_model::auth::in_scope;
use gridwatch_model::time::minutes_between;

use crate::dingtalk::BODY_MAX;

/// Items a digest names; the rest are counted.
pub const LISTED: usize = 20;

/// The group answering for `node`: the deepest of `groups` at or above it.
pub fn group_of<'a>(groups: &'a [String], node: &str) -> Option<&'a str> {
    groups
        .iter()
        .filter(|g| in_scope(g, node))
        .max_by_key(|g| g.len())
        .map(String::as_str)
}

/// One line of a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Minutes left (negative: overdue).
    pub left_min: i64,
    /// A supervision order (else an incident).
    pub order: bool,
    pub text: String,
}

fn left(min: i64) -> String {
    if min < 0 {
        format!("**超时 {} 分钟**", -min)
    } else {
        format!("剩 {} 小时 {:02} 分", min / 60, min % 60)
    }
}

/// The lines of `group`'s items at `now` (RFC 3339), overdue first, then
/// the soonest due.
pub fn lines(
    groups: &[String],
    group: &str,
    incidents: &[OpenIncident],
    orders: &[OpenOrder],
    now: &str,
) -> Vec<Line> {
    let mut out = Vec::new();
    for i in incidents {
        if group_of(groups, &i.incident.owner) != Some(group) {
            continue;
        }
        let Some(m) = minutes_between(now, &i.incident.due) else {
            continue;
        };
        out.push(Line {
            left_min: m,
            order: false,
            text: format!(
                "- 事件 {} · {}级 · {} · {} · {}",
                i.incident.incident_id,
                i.incident.level,
                i.incident.category,
                i.node,
                left(m)
            ),
        });
    }
    for o in orders {
        if group_of(groups, &o.node) != Some(group) {
            continue;
        }
        let Some(m) = minutes_between(now, &o.order.due) else {
            continue;
        };
        out.push(Line {
            left_min: m,
            order: true,
            text: format!("- 督办单 {} · {} · {}", o.order.number, o.node, left(m)),
        });
    }
    out.sort_by(|a, b| a.left_min.cmp(&b.left_min).then(a.text.cmp(&b.text)));
    out
}

/// The markdown of a digest: title and text, at most [`LISTED`] lines
/// named, and never over DingTalk's body limit (lines are dropped from the
/// end and counted instead).
pub fn markdown(group_name: &str, hour: u32, lines: &[Line]) -> (String, String) {
    let title = format!("事件处置提醒 {hour:02}:00");
    let overdue = lines.iter().filter(|l| l.left_min < 0).count();
    let head = format!(
        "### {title}\n{group_name}：未办结 **{}** 项，其中超时 **{overdue}** 项，16:00 前须全部办结。\n\n",
        lines.len()
    );
    let mut shown = lines.len().min(LISTED);
    loop {
        let mut text = head.clone();
        for l in &lines[..shown] {
            text.push_str(&l.text);
            text.push('\n');
        }
        if shown < lines.len() {
            text.push_str(&format!("- 另有 {} 项\n", lines.len() - shown));
        }
        // The JSON around the text takes well under 1 KB.
        if text.len() + title.len() + 1024 <= BODY_MAX || shown == 0 {
            return (title, text);
        }
        shown -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridwatch_model::event::{FlagKind, IncidentAction};
    use gridwatch_model::state::{FlagOpen, IncidentOpen};

    fn incident(id: &str, owner: &str, due: &str) -> OpenIncident {
        OpenIncident {
            node: "beilun/daqi/x/g01/m01".into(),
            incident: IncidentOpen {
                incident_id: id.into(),
                level: 2,
                category: "生活物资".into(),
                reported: "2022-10-15T09:00:00+08:00".into(),
                last_action: IncidentAction::Reported,
                owner: owner.into(),
                due: due.into(),
                transfer_due: None,
                label: None,
            },
        }
    }

    fn order(n: &str, node: &str, due: &str) -> OpenOrder {
        OpenOrder {
            node: node.into(),
            order: FlagOpen {
                flag_id: n.into(),
                kind: FlagKind::Vendor,
                severity: 2,
                raised: "2022-10-15T09:00:00+08:00".into(),
                number: format!("督-20221015-{n}"),
                due: due.into(),
                reopened: false,
            },
        }
    }

    #[test]
    fn items_go_to_the_deepest_group_and_overdue_ones_lead() {
        let groups: Vec<String> = ["beilun", "beilun/daqi", "beilun/daqi/x/g01"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            group_of(&groups, "beilun/daqi/x/g01/m01"),
            Some("beilun/daqi/x/g01")
        );
        assert_eq!(group_of(&groups, "beilun/daqi/x"), Some("beilun/daqi"));
        assert_eq!(group_of(&groups, "beilun"), Some("beilun"));
        assert_eq!(group_of(&groups[1..], "beilun/xinqi"), None);
        let incidents = [
            incident("a", "beilun/daqi/x/g01", "2022-10-15T16:00:00+08:00"),
            incident("b", "beilun/daqi", "2022-10-15T16:00:00+08:00"),
            incident("c", "beilun/daqi/x/g01", "2022-10-15T09:30:00+08:00"),
        ];
        let orders = [order(
            "0001",
            "beilun/daqi/x/g01/m01",
            "2022-10-15T10:30:00+08:00",
        )];
        let now = "2022-10-15T10:00:00+08:00";
        let grid = lines(&groups, "beilun/daqi/x/g01", &incidents, &orders, now);
        let ids: Vec<i64> = grid.iter().map(|l| l.left_min).collect();
        assert_eq!(ids, [-30, 30, 360]);
        assert!(grid[0].text.contains("事件 c") && grid[0].text.contains("超时 30 分钟"));
        assert!(grid[1].text.contains("督-20221015-0001"));
        let street = lines(&groups, "beilun/daqi", &incidents, &orders, now);
        assert_eq!(street.len(), 1);
        let (title, text) = markdown("大碶街道", 10, &grid);
        assert_eq!(title, "事件处置提醒 10:00");
        assert!(
            text.contains("未办结 **3** 项，其中超时 **1** 项"),
            "{text}"
        );
    }

    #[test]
    fn a_long_digest_names_twenty_and_stays_under_the_body_limit() {
        let many: Vec<Line> = (0..500)
            .map(|k| Line {
                left_min: k,
                order: false,
                text: format!("- 事件 I-{k:04} · {}", "很长的类别说明".repeat(40)),
            })
            .collect();
        let (_, text) = markdown("北仑区", 9, &many);
        assert!(text.len() + 1024 <= BODY_MAX, "{} bytes", text.len());
        assert!(text.contains("另有"), "{text}");
        let (_, short) = markdown("北仑区", 9, &many[..30]);
        assert_eq!(short.matches("- 事件").count(), LISTED);
        assert!(short.contains("- 另有 10 项"));
    }
}
