use super::*;

#[test]
fn the_tree_lists_every_micro_grid_in_registry_order() {
    let reg = Registry::from_json(crate::registry::BEILUN_REGISTRY_JSON).expect("registry");
    let h = Hierarchy::of(&reg);
    let listed: Vec<&str> = h
        .streets
        .iter()
        .flat_map(|s| &s.communities)
        .flat_map(|c| &c.grids)
        .flat_map(|g| &g.microgrids)
        .map(|m| m.node.as_str())
        .collect();
    let ordinals: Vec<&str> = reg
        .microgrids
        .iter()
        .map(|&m| reg.node(m).id.as_str())
        .collect();
    assert_eq!(listed, ordinals);
    let text = serde_json::to_string(&h).expect("serializes");
    assert_eq!(serde_json::from_str::<Hierarchy>(&text).ok(), Some(h));
}

#[test]
fn a_micro_grid_record_has_its_team_and_a_street_none() {
    let reg = Registry::from_json(crate::registry::BEILUN_REGISTRY_JSON).expect("registry");
    let mg = RegistryRecord::of(&reg, reg.microgrids[0]);
    assert!(mg.team.is_some() && mg.registered_zone.is_some());
    let street = RegistryRecord::of(&reg, reg.nodes[0].children[0]);
    assert_eq!(street.level, Level::Street);
    assert!(street.team.is_none());
    let text = serde_json::to_string(&street).expect("serializes");
    assert!(!text.contains("team"), "{text}");
}
