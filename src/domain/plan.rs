//! Planning the reopening: proposing a day for every postponed appointment of a site, in the
//! contract's order, never beyond the capacity of each day.
//!
//! Operations take operating-room minutes (their expected duration) from the site's days;
//! consultations take one slot of their service's day. Each appointment, in the list's order,
//! gets the earliest day that still has room for it (first fit): a day is never refused to an
//! appointment for one further down the list, though a short operation further down may fill
//! a gap an earlier, longer one could not. An appointment that fits nowhere in the window, or
//! only after its priority's deadline, is flagged.

use chrono::NaiveDate;

/// Days after the original date by which each priority (1 to 4) should be seen again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines(pub [i64; 4]);

impl Default for Deadlines {
    /// 2 weeks, 4 weeks, 3 months, 6 months.
    fn default() -> Self {
        Deadlines([14, 28, 91, 182])
    }
}

impl Deadlines {
    /// `14,28,91,182`: four numbers of days, for priorities 1 to 4.
    pub fn parse(raw: &str) -> Result<Self, super::Invalid> {
        let days: Vec<i64> = raw
            .split(',')
            .map(|d| d.trim().parse::<i64>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                super::Invalid("must be four numbers of days, such as 14,28,91,182".into())
            })?;
        match <[i64; 4]>::try_from(days) {
            Ok(d) if d.iter().all(|n| (1..=3650).contains(n)) => Ok(Deadlines(d)),
            _ => Err(super::Invalid(
                "must be four numbers of days between 1 and 3650, such as 14,28,91,182".into(),
            )),
        }
    }

    /// The day by which an appointment of this priority, first set on `original`, is due.
    pub fn due(&self, priority: i32, original: NaiveDate) -> NaiveDate {
        let i = usize::try_from(priority.clamp(1, 4) - 1).unwrap_or(3);
        original + chrono::Duration::days(self.0[i])
    }
}

/// What one appointment asks of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Operating-room minutes on one day.
    Minutes(u32),
    /// One consultation slot of this service (an index into the days' slots).
    Slot(usize),
}

/// One day of the window: operating-room minutes and, per service, consultation slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    pub date: NaiveDate,
    pub minutes: u32,
    pub slots: Vec<u32>,
}

/// The day given to each need (an index into `days`), or `None` when none has room; `days`
/// keep what is left.
pub fn first_fit(days: &mut [Day], needs: &[Need]) -> Vec<Option<usize>> {
    let services = days.first().map_or(0, |d| d.slots.len());
    // The first day that may still have room, per resource: every day before it is full for
    // the smallest need seen (a slot is one; minutes are scanned from the first non-empty day).
    let mut first_minutes = 0usize;
    let mut first_slot = vec![0usize; services];
    needs
        .iter()
        .map(|need| match *need {
            Need::Minutes(m) => {
                while first_minutes < days.len() && days[first_minutes].minutes == 0 {
                    first_minutes += 1;
                }
                let found = (first_minutes..days.len()).find(|&d| days[d].minutes >= m)?;
                days[found].minutes -= m;
                Some(found)
            }
            Need::Slot(s) => {
                let start = first_slot.get_mut(s)?;
                while *start < days.len() && days[*start].slots[s] == 0 {
                    *start += 1;
                }
                let found = *start;
                let day = days.get_mut(found)?;
                day.slots[s] -= 1;
                Some(found)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2022, 6, day).unwrap_or_default()
    }

    fn days(minutes: &[u32], slots: &[u32]) -> Vec<Day> {
        minutes
            .iter()
            .zip(slots)
            .enumerate()
            .map(|(i, (m, s))| Day {
                date: d(i as u32 + 1),
                minutes: *m,
                slots: vec![*s],
            })
            .collect()
    }

    #[test]
    fn operations_fill_days_in_order_and_never_beyond_their_minutes() {
        let mut window = days(&[240, 240, 240], &[0, 0, 0]);
        let needs = [
            Need::Minutes(120),
            Need::Minutes(180),
            Need::Minutes(120),
            Need::Minutes(60),
            Need::Minutes(300),
        ];
        let placed = first_fit(&mut window, &needs);
        // 120 on day 0; 180 does not fit in the 120 left: day 1; 120 fills day 0; 60 fits in
        // day 1's 60 left; 300 fits nowhere.
        assert_eq!(placed, vec![Some(0), Some(1), Some(0), Some(1), None]);
        assert_eq!(
            window.iter().map(|d| d.minutes).collect::<Vec<_>>(),
            vec![0, 0, 240]
        );
    }

    #[test]
    fn consultations_take_one_slot_of_their_service() {
        let mut window = vec![
            Day {
                date: d(1),
                minutes: 0,
                slots: vec![1, 0],
            },
            Day {
                date: d(2),
                minutes: 0,
                slots: vec![2, 1],
            },
        ];
        let needs = [
            Need::Slot(0),
            Need::Slot(1),
            Need::Slot(0),
            Need::Slot(0),
            Need::Slot(0),
            Need::Slot(9),
        ];
        let placed = first_fit(&mut window, &needs);
        assert_eq!(placed, vec![Some(0), Some(1), Some(1), Some(1), None, None]);
    }

    #[test]
    fn deadlines_follow_priority() {
        let deadlines = Deadlines::default();
        assert_eq!(deadlines.due(1, d(1)), d(15));
        assert_eq!(deadlines.due(2, d(1)), d(29));
        assert_eq!(deadlines.due(9, d(1)), deadlines.due(4, d(1)));
        assert_eq!(
            Deadlines::parse("7, 14,30,60"),
            Ok(Deadlines([7, 14, 30, 60]))
        );
        for bad in ["", "1,2,3", "1,2,3,x", "0,1,2,3", "1,2,3,4,5"] {
            assert!(Deadlines::parse(bad).is_err(), "{bad}");
        }
    }
}

/// The planning settings (`REPRISE_MODERATE_FRACTION`, `REPRISE_PRIORITY_DEADLINES`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Planning {
    /// The share of its operating-room time a site on the `moderate` programme uses.
    pub moderate_fraction: f64,
    pub deadlines: Deadlines,
}

impl Default for Planning {
    fn default() -> Self {
        Planning {
            moderate_fraction: 0.5,
            deadlines: Deadlines::default(),
        }
    }
}

/// A fraction strictly above 0 and at most 1 (`0.5`, `50%`).
pub fn parse_fraction(raw: &str) -> Result<f64, super::Invalid> {
    let raw = raw.trim();
    let value = match raw.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => raw.parse::<f64>(),
    };
    value
        .ok()
        .filter(|f| f.is_finite() && *f > 0.0 && *f <= 1.0)
        .ok_or_else(|| {
            super::Invalid("must be a fraction above 0 and at most 1, such as 0.5 or 50%".into())
        })
}
