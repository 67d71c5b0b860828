//! Planning the reopening: proposing a day for every postponed appointment of a site, in the
//! contract's order, never beyond the capacity of each day.
//!
//! Operations take operating-room minutes (their expected duration) from the site's days;
//! consultations take one slot of their service's day. Each appointment, in the list's order,
//! gets the earliest day that still has room for it (first fit): a day is never refused to an
//! appointment for one further down the list, though a short operation further down may fill
//! a gap an earlier, longer one could not. An appointment that fits nowhere in the window, or
//! only after its priority's deadline, is flagged.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};

use super::appointment::{Kind, Programme};

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

/// A day of this century's plans: `YYYY-MM-DD`, years 2000 to 2100 (dates far outside are
/// typing mistakes, and PostgreSQL refuses some that SQLite stores).
pub fn parse_day(raw: &str) -> Result<NaiveDate, super::Invalid> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .ok()
        .filter(|d| (2000..=2100).contains(&d.year()))
        .ok_or_else(|| super::Invalid("must be a date from 2000 to 2100 such as 2022-06-13".into()))
}

/// A whole number from `min` to `max`.
pub fn in_range(n: i32, min: i32, max: i32) -> Result<i32, super::Invalid> {
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(super::Invalid(format!("must be between {min} and {max}")))
    }
}

/// Operating-room minutes of `rooms` × `minutes` at `fraction`, in whole basis points so that
/// 3 × 60 × 0.35 is 63, not 62.999….
pub fn share(rooms: i32, minutes: i32, fraction: f64) -> u32 {
    let basis_points = (fraction * 10_000.0).round() as u64;
    let total =
        u64::try_from(rooms.max(0)).unwrap_or(0) * u64::try_from(minutes.max(0)).unwrap_or(0);
    u32::try_from(total * basis_points / 10_000).unwrap_or(u32::MAX)
}

/// Monday to Friday.
pub fn is_working_day(day: NaiveDate) -> bool {
    day.weekday().number_from_monday() <= 5
}

/// Working days (Monday to Friday) from `from` to `until`, both included.
pub fn working_days(from: NaiveDate, until: NaiveDate) -> i64 {
    from.iter_days()
        .take_while(|d| *d <= until)
        .filter(|d| is_working_day(*d))
        .count() as i64
}

/// The day the `n`th working day from `from` falls on (1: the first working day).
pub fn nth_working_day(from: NaiveDate, n: i64) -> Option<NaiveDate> {
    from.iter_days()
        .filter(|d| is_working_day(*d))
        .nth(usize::try_from(n.max(1) - 1).ok()?)
}

/// A site's operating-room days: its rooms (those opened, else all), its session length, the
/// share of its programme (`full` 100 %, `moderate` or none yet: the configured fraction), and
/// the days with a capacity of their own (rooms, session minutes).
#[derive(Debug, Clone, PartialEq)]
pub struct SiteDays {
    pub rooms: i32,
    pub session_minutes: i32,
    pub fraction: f64,
    pub overrides: HashMap<NaiveDate, (i32, i32)>,
}

impl SiteDays {
    pub fn new(
        rooms: i32,
        session_minutes: i32,
        programme: Option<Programme>,
        planning: &Planning,
        overrides: HashMap<NaiveDate, (i32, i32)>,
    ) -> Self {
        SiteDays {
            rooms,
            session_minutes,
            fraction: match programme {
                Some(Programme::Full) => 1.0,
                Some(Programme::Moderate) | None => planning.moderate_fraction,
            },
            overrides,
        }
    }

    /// Operating-room minutes of a day: weekdays only, unless the day has its own capacity.
    pub fn minutes(&self, day: NaiveDate) -> u32 {
        let (rooms, minutes) = match self.overrides.get(&day) {
            Some(&(rooms, minutes)) => (rooms, minutes),
            None if is_working_day(day) => (self.rooms, self.session_minutes),
            None => (0, 0),
        };
        share(rooms, minutes, self.fraction)
    }

    /// Operating-room minutes of a usual working day, rounded down.
    pub fn per_working_day(&self) -> i64 {
        (f64::from(self.rooms) * f64::from(self.session_minutes) * self.fraction).floor() as i64
    }
}

/// A service as the plan sees it: consultation slots a working day, and the length of an
/// operation whose label has none of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDay {
    pub code: String,
    pub consultation_slots: i32,
    pub operation_minutes: i32,
}

/// A postponed appointment waiting for a day, in the contract's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub kind: Kind,
    pub service: String,
    pub label: String,
    pub priority: i32,
    /// The original day, in Brussels.
    pub original_day: NaiveDate,
}

/// What the plan gave one waiting appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    /// Operating-room minutes it takes (operations).
    pub minutes: Option<u32>,
    /// `None` when nothing in the window has room for it.
    pub day: Option<NaiveDate>,
    /// The day its priority's deadline falls on.
    pub due: NaiveDate,
    /// Not placed, or placed after `due`.
    pub late: bool,
}

/// A day of the window: what it offered and what the plan used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayUse {
    pub date: NaiveDate,
    pub operation_minutes: u32,
    pub operation_minutes_used: u32,
    pub operations: u32,
    pub consultation_slots: u32,
    pub consultations: u32,
}

/// A plan: each day's use, and a proposal for each waiting appointment, in its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub days: Vec<DayUse>,
    pub proposals: Vec<Proposal>,
}

impl Plan {
    pub fn planned(&self) -> usize {
        self.proposals.iter().filter(|p| p.day.is_some()).count()
    }

    pub fn late(&self) -> usize {
        self.proposals.iter().filter(|p| p.late).count()
    }
}

/// Proposes a day from `from` to `until` for each waiting appointment, in its order (first
/// fit): operations take their label's minutes (else their service's default) from the
/// site's day, consultations a slot of their service's working day.
pub fn plan(
    site: &SiteDays,
    services: &[ServiceDay],
    durations: &HashMap<(String, String), i32>,
    waiting: &[Waiting],
    (from, until): (NaiveDate, NaiveDate),
    deadlines: &Deadlines,
) -> Plan {
    let index: HashMap<&str, usize> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.code.as_str(), i))
        .collect();
    let mut days: Vec<Day> = from
        .iter_days()
        .take_while(|d| *d <= until)
        .map(|date| Day {
            date,
            minutes: site.minutes(date),
            slots: services
                .iter()
                .map(|s| {
                    if is_working_day(date) {
                        u32::try_from(s.consultation_slots).unwrap_or(0)
                    } else {
                        0
                    }
                })
                .collect(),
        })
        .collect();
    let offered: Vec<(u32, u32)> = days
        .iter()
        .map(|d| (d.minutes, d.slots.iter().sum()))
        .collect();
    let needs: Vec<Need> = waiting
        .iter()
        .map(|w| {
            let service = index.get(w.service.as_str()).copied();
            match w.kind {
                Kind::Operation => {
                    let default = service.map_or(120, |i| services[i].operation_minutes);
                    let minutes = durations
                        .get(&(w.service.clone(), w.label.clone()))
                        .copied()
                        .unwrap_or(default);
                    Need::Minutes(u32::try_from(minutes.max(1)).unwrap_or(1))
                }
                // A service the site no longer has: a slot nowhere.
                Kind::Consultation => Need::Slot(service.unwrap_or(usize::MAX)),
            }
        })
        .collect();
    let placed = first_fit(&mut days, &needs);
    let mut uses: Vec<DayUse> = days
        .iter()
        .zip(&offered)
        .map(|(d, &(minutes, slots))| DayUse {
            date: d.date,
            operation_minutes: minutes,
            operation_minutes_used: minutes - d.minutes,
            operations: 0,
            consultation_slots: slots,
            consultations: slots - d.slots.iter().sum::<u32>(),
        })
        .collect();
    let proposals = waiting
        .iter()
        .zip(needs.iter().zip(&placed))
        .map(|(w, (need, at))| {
            if let (Some(d), Need::Minutes(_)) = (at, need) {
                uses[*d].operations += 1;
            }
            let day = at.map(|d| days[d].date);
            let due = deadlines.due(w.priority, w.original_day);
            Proposal {
                minutes: match need {
                    Need::Minutes(m) => Some(*m),
                    Need::Slot(_) => None,
                },
                day,
                due,
                late: day.is_none_or(|d| d > due),
            }
        })
        .collect();
    Plan {
        days: uses,
        proposals,
    }
}

/// A site's consultations still to see, service by service: `(left, slots a working day)`,
/// and those of services it no longer has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    pub services: Vec<(i64, i64)>,
    pub orphans: i64,
}

/// Whether and when a site sees all its postponed consultations again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outlook {
    pub remaining: i64,
    pub slots_per_working_day: i64,
    pub capacity_until_date: i64,
    pub reaches_date: bool,
    pub done_at_capacity: Option<NaiveDate>,
    pub pace_per_day: f64,
    pub done_at_pace: Option<NaiveDate>,
}

/// The outlook of a site from `from` to `date`, service by service as the plan places them (a
/// consultation takes a slot of its own service only: the site reaches the date when every
/// service does), and at `rescheduled_last_week`'s pace from `today`.
pub fn outlook(
    backlog: &Backlog,
    (from, date): (NaiveDate, NaiveDate),
    rescheduled_last_week: i64,
    today: NaiveDate,
) -> Outlook {
    let work = working_days(from, date);
    let remaining = backlog.services.iter().map(|s| s.0).sum::<i64>() + backlog.orphans;
    let per_day: i64 = backlog.services.iter().map(|s| s.1).sum();
    let usable: i64 = backlog
        .services
        .iter()
        .map(|(left, day)| (*left).min(day * work))
        .sum();
    let done_at_capacity = if remaining == 0 {
        Some(from)
    } else if backlog.orphans > 0 {
        None
    } else {
        // The latest service's last day; none if a service with some left has no slot.
        backlog
            .services
            .iter()
            .filter(|(left, _)| *left > 0)
            .map(|(left, day)| {
                (*day > 0)
                    .then(|| nth_working_day(from, (left + day - 1) / day))
                    .flatten()
            })
            .collect::<Option<Vec<_>>>()
            .and_then(|days| days.into_iter().max())
    };
    let pace_per_day = rescheduled_last_week as f64 / 7.0;
    Outlook {
        remaining,
        slots_per_working_day: per_day,
        capacity_until_date: per_day * work,
        reaches_date: usable >= remaining,
        done_at_capacity,
        pace_per_day,
        done_at_pace: if remaining == 0 {
            Some(today)
        } else if pace_per_day > 0.0 {
            let days = (remaining as f64 / pace_per_day).ceil() as i64;
            today.checked_add_signed(chrono::Duration::days(days))
        } else {
            None
        },
    }
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

    fn on(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default()
    }

    #[test]
    fn shares_are_whole_minutes_without_float_loss() {
        assert_eq!(share(3, 60, 0.35), 63);
        assert_eq!(share(1, 100, 0.29), 29);
        assert_eq!(share(2, 480, 0.5), 480);
        assert_eq!(share(4, 480, 1.0), 1920);
        assert_eq!(share(-1, 480, 1.0), 0);
    }

    #[test]
    fn working_days_skip_weekends() {
        // Monday 4 to Sunday 10 March 2030: five working days.
        assert_eq!(working_days(on(2030, 3, 4), on(2030, 3, 10)), 5);
        assert_eq!(working_days(on(2030, 3, 9), on(2030, 3, 10)), 0);
        assert_eq!(nth_working_day(on(2030, 3, 4), 1), Some(on(2030, 3, 4)));
        assert_eq!(nth_working_day(on(2030, 3, 4), 6), Some(on(2030, 3, 11)));
        assert_eq!(nth_working_day(on(2030, 3, 9), 1), Some(on(2030, 3, 11)));
    }

    #[test]
    fn a_site_works_weekdays_at_its_programmes_share_unless_a_day_says_otherwise() {
        let planning = Planning::default();
        let saturday = on(2030, 3, 9);
        let moderate = SiteDays::new(
            4,
            480,
            None,
            &planning,
            HashMap::from([(saturday, (1, 240))]),
        );
        assert_eq!(moderate.minutes(on(2030, 3, 4)), 960);
        assert_eq!(moderate.minutes(saturday), 120);
        assert_eq!(moderate.minutes(on(2030, 3, 10)), 0);
        assert_eq!(moderate.per_working_day(), 960);
        let full = SiteDays::new(4, 480, Some(Programme::Full), &planning, HashMap::new());
        assert_eq!(full.minutes(on(2030, 3, 4)), 1920);
    }

    fn waiting(kind: Kind, service: &str, label: &str, priority: i32) -> Waiting {
        Waiting {
            kind,
            service: service.into(),
            label: label.into(),
            priority,
            original_day: on(2030, 3, 1),
        }
    }

    #[test]
    fn a_plan_places_operations_by_their_length_and_consultations_by_their_service() {
        // Monday 4 to Tuesday 5 March 2030; one room of 120 minutes at full programme.
        let site = SiteDays::new(
            1,
            120,
            Some(Programme::Full),
            &Planning::default(),
            HashMap::new(),
        );
        let services = [
            ServiceDay {
                code: "CHIR".into(),
                consultation_slots: 0,
                operation_minutes: 90,
            },
            ServiceDay {
                code: "CARD".into(),
                consultation_slots: 1,
                operation_minutes: 60,
            },
        ];
        let lengths = HashMap::from([(("CHIR".to_string(), "Hanche".to_string()), 120)]);
        let list = [
            waiting(Kind::Operation, "CHIR", "Hanche", 1),
            waiting(Kind::Operation, "CHIR", "Genou", 2),
            waiting(Kind::Consultation, "CARD", "Contrôle", 3),
            waiting(Kind::Consultation, "CARD", "Contrôle", 3),
            waiting(Kind::Consultation, "CARD", "Contrôle", 1),
            waiting(Kind::Consultation, "GONE", "Contrôle", 4),
        ];
        let p = plan(
            &site,
            &services,
            &lengths,
            &list,
            (on(2030, 3, 4), on(2030, 3, 5)),
            &Deadlines([1, 28, 91, 182]),
        );
        let days: Vec<_> = p.proposals.iter().map(|x| x.day).collect();
        assert_eq!(
            days,
            vec![
                Some(on(2030, 3, 4)),
                Some(on(2030, 3, 5)),
                Some(on(2030, 3, 4)),
                Some(on(2030, 3, 5)),
                None,
                None
            ]
        );
        assert_eq!(p.proposals[0].minutes, Some(120));
        assert_eq!(
            p.proposals[1].minutes,
            Some(90),
            "the service's default length"
        );
        assert_eq!(p.proposals[2].minutes, None);
        // Priority 1 is due a day after 1 March: placed on the 4th, it is late.
        assert!(p.proposals[0].late);
        assert!(!p.proposals[1].late);
        assert!(
            p.proposals[4].late && p.proposals[5].late,
            "not placed is late"
        );
        assert_eq!((p.planned(), p.late()), (4, 3));
        assert_eq!(p.days[0].operation_minutes, 120);
        assert_eq!(p.days[0].operation_minutes_used, 120);
        assert_eq!(p.days[1].operation_minutes_used, 90);
        assert_eq!((p.days[0].operations, p.days[0].consultations), (1, 1));
        assert_eq!(p.days[1].consultation_slots, 1);
    }

    #[test]
    fn the_outlook_is_the_latest_services_and_none_without_slots_or_with_orphans() {
        let (monday, friday) = (on(2030, 3, 4), on(2030, 3, 8));
        let today = on(2030, 3, 1);
        // 7 left at 5 a day, 2 left at 1 a day: the second ends on Tuesday.
        let backlog = Backlog {
            services: vec![(7, 5), (2, 1)],
            orphans: 0,
        };
        let o = outlook(&backlog, (monday, friday), 14, today);
        assert_eq!(o.remaining, 9);
        assert_eq!(o.slots_per_working_day, 6);
        assert_eq!(o.capacity_until_date, 30);
        assert!(o.reaches_date);
        assert_eq!(o.done_at_capacity, Some(on(2030, 3, 5)));
        assert_eq!(o.pace_per_day, 2.0);
        assert_eq!(o.done_at_pace, Some(on(2030, 3, 6)));
        // One service has more than its slots until Friday.
        let short = Backlog {
            services: vec![(30, 5)],
            orphans: 0,
        };
        let o = outlook(&short, (monday, friday), 0, today);
        assert!(!o.reaches_date);
        assert_eq!(
            o.done_at_capacity,
            Some(on(2030, 3, 11)),
            "six working days"
        );
        assert_eq!(o.done_at_pace, None);
        let no_slot = Backlog {
            services: vec![(1, 0)],
            orphans: 0,
        };
        assert_eq!(
            outlook(&no_slot, (monday, friday), 0, today).done_at_capacity,
            None
        );
        let orphans = Backlog {
            services: vec![(1, 5)],
            orphans: 2,
        };
        let o = outlook(&orphans, (monday, friday), 0, today);
        assert_eq!(
            (o.remaining, o.done_at_capacity, o.reaches_date),
            (3, None, false)
        );
        let done = outlook(&Backlog::default(), (monday, friday), 0, today);
        assert_eq!(
            (done.done_at_capacity, done.done_at_pace),
            (Some(monday), Some(today))
        );
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
