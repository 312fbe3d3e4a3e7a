//! The responsible groups: every registry node at the configured levels,
//! plus each robot's groups, each with its name and its robot (if any).

use gridwatch_model::Registry;

use crate::config::Config;

/// One group a digest goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub node: String,
    /// Its names from the street down ("大碶街道 岩东社区 g01"), or the
    /// district's.
    pub name: String,
    /// Index into the configured robots; none: the outbox.
    pub robot: Option<usize>,
}

/// Every group, and their node ids (for [`crate::digest::group_of`]).
#[derive(Clone, Debug, Default)]
pub struct Groups {
    pub list: Vec<Group>,
    pub ids: Vec<String>,
}

/// A node's names from the street down, leaving out a parent whose name
/// its child's already begins with ("霞西村委会 霞西村委会第1网格" →
/// "霞西村委会第1网格").
fn display_name(reg: &Registry, i: u32) -> String {
    let mut names: Vec<&str> = Vec::new();
    let mut at = Some(i);
    while let Some(k) = at {
        let n = reg.node(k);
        if n.parent.is_none() && !names.is_empty() {
            break;
        }
        if !names
            .last()
            .is_some_and(|child| child.starts_with(n.name.as_str()))
        {
            names.push(&n.name);
        }
        at = n.parent;
    }
    names.reverse();
    names.join(" ")
}

impl Groups {
    /// The groups of `cfg` over `reg`.
    ///
    /// Fails when a robot names a node the registry does not have.
    pub fn build(reg: &Registry, cfg: &Config) -> Result<Groups, String> {
        let mut out = Groups::default();
        for (i, n) in reg.nodes.iter().enumerate() {
            let depth = n.level.depth();
            if depth <= 3 && cfg.group_levels.contains(&(depth as u8)) {
                out.list.push(Group {
                    node: n.id.to_string(),
                    name: display_name(reg, i as u32),
                    robot: None,
                });
            }
        }
        for (r, robot) in cfg.robots.iter().enumerate() {
            for g in &robot.groups {
                let Some(i) = reg.lookup(g) else {
                    return Err(format!("robot `{}`: no node `{g}`", robot.name));
                };
                if reg.node(i).level.depth() > 3 {
                    return Err(format!(
                        "robot `{}`: `{g}` is a micro-grid; groups are grids and above",
                        robot.name
                    ));
                }
                match out.list.iter_mut().find(|x| x.node == *g) {
                    Some(x) => x.robot = Some(r),
                    None => out.list.push(Group {
                        node: g.clone(),
                        name: display_name(reg, i),
                        robot: Some(r),
                    }),
                }
            }
        }
        out.ids = out.list.iter().map(|g| g.node.clone()).collect();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Robot;

    #[test]
    fn levels_and_robots_make_the_groups() {
        let reg = gridwatch_runtime::registry::load(None).expect("the committed registry");
        let grid = reg
            .nodes
            .iter()
            .find(|n| n.level.depth() == 3)
            .map(|n| n.id.to_string())
            .expect("a grid");
        let cfg = Config {
            group_levels: vec![0, 1],
            robots: vec![Robot {
                name: "r".into(),
                groups: vec!["beilun/daqi".into(), grid.clone()],
                webhook: "http://127.0.0.1:1/robot/send?access_token=a".into(),
                secret: "SEC1".into(),
                at_mobiles: vec![],
            }],
            ..Config::default()
        };
        let g = Groups::build(&reg, &cfg).expect("groups");
        assert_eq!(g.list.len(), 1 + 11 + 1);
        assert_eq!(g.list[0].name, "北仑区");
        let daqi = g
            .list
            .iter()
            .find(|x| x.node == "beilun/daqi")
            .expect("daqi");
        assert_eq!((daqi.name.as_str(), daqi.robot), ("大碶街道", Some(0)));
        let gr = g.list.iter().find(|x| x.node == grid).expect("the grid");
        assert_eq!(gr.name.split(' ').count(), 2, "{}", gr.name);
        let mut bad = cfg.clone();
        bad.robots[0].groups.push("beilun/nowhere".into());
        assert!(Groups::build(&reg, &bad).is_err());
    }
}
