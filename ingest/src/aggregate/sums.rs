//! [`Sums`]: what one micro-grid contributes to the figures of every node
//! above it (and of itself). Each field is one column of the polars
//! roll-up, named as the field.

/// Declares [`Sums`] with one `u64` field per column, the column names in
/// field order, and the field-wise arithmetic the roll-up needs.
macro_rules! sums {
    ($($(#[$doc:meta])* $field:ident),* $(,)?) => {
        /// Additive figures of one micro-grid, or their sum over a node.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Sums {
            $($(#[$doc])* pub $field: u64,)*
        }

        impl Sums {
            /// Column names, in field order.
            pub const COLS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// The fields in [`Sums::COLS`] order.
            pub fn values(&self) -> Vec<u64> {
                vec![$(self.$field),*]
            }

            /// Builds one from its values in [`Sums::COLS`] order (missing
            /// ones are 0).
            pub fn from_values(mut v: impl Iterator<Item = u64>) -> Self {
                Self { $($field: v.next().unwrap_or(0),)* }
            }

            /// Field-wise `self += o` (saturating: nothing can panic).
            pub fn add(&mut self, o: &Sums) {
                $(self.$field = self.$field.saturating_add(o.$field);)*
            }

            /// Field-wise `self -= o`; `o` must be part of `self` (it was
            /// added before), so nothing goes below 0.
            pub fn sub(&mut self, o: &Sums) {
                $(self.$field = self.$field.saturating_sub(o.$field);)*
            }
        }
    };
}

sums! {
    microgrids,
    population,
    households,
    /// Staff the zone class asks for.
    staff,
    patrols_1h,
    persons_1h,
    patrols_today,
    /// 1 for a sealed or control micro-grid.
    closed,
    closed_patrolled_2h,
    patrolled_2h,
    gatherings_dispersed,
    people_persuaded,
    venues_closed,
    vendors_cleared,
    violations,
    samples_today,
    samples_10min,
    queue,
    flags_open,
    raised_today,
    rectified_today,
    red,
    amber,
    open_l1,
    open_l2,
    open_l3,
    open_l4,
    reported_today,
    resolved_today,
    /// Open incidents past their due time.
    incidents_overdue,
    /// Open level-2 incidents not transferred within 6 h.
    transfer_overdue,
    /// Open incidents due at or before the coming 16:00, not overdue.
    due_before_16,
    /// Open supervision orders past their due time.
    orders_overdue,
}

impl Sums {
    /// Open incidents by level (1, 2, 3, 4 and above).
    pub fn open_by_level(&self) -> [u64; 4] {
        [self.open_l1, self.open_l2, self.open_l3, self.open_l4]
    }

    /// Sets the open incidents by level.
    pub fn set_open_by_level(&mut self, v: [u64; 4]) {
        [self.open_l1, self.open_l2, self.open_l3, self.open_l4] = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_in_column_order() {
        let v: Vec<u64> = (1..=Sums::COLS.len() as u64).collect();
        let s = Sums::from_values(v.iter().copied());
        assert_eq!(s.values(), v);
        assert_eq!(s.microgrids, 1);
        assert_eq!(s.orders_overdue, Sums::COLS.len() as u64);
        assert_eq!(Sums::COLS[0], "microgrids");
        let mut t = s;
        t.add(&s);
        t.sub(&s);
        assert_eq!(t, s);
    }
}
