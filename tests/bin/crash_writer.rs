//! The process the crash test kills: saves aggregates from several threads in
//! a loop until it is killed, and reports each save only after `save` has
//! returned `Ok`.
//!
//! ```text
//! crash-writer <seed> <threads> sqlite <path>
//! crash-writer <seed> <threads> postgres <url> <table-prefix>
//! ```
//!
//! Prints `ready` once the store is open, then, after each save, one line per
//! saved event: `ack <notification-id> <originator-id> <version> <save> <part> <of>`.
//! A save's lines go out in one write on the locked stdout, so a kill leaves at
//! most a partial last line, which the test ignores. Any error is printed to
//! stderr and ends the process with status 1.

mod child;
mod ticker;

use child::Child;

const CHILD: Child = Child {
    name: "crash-writer",
    usage: "crash-writer <seed> <threads> (sqlite <path> | postgres <url> <table-prefix>)",
};

use std::io::Write as _;
use std::thread;

use es_core::prelude::*;

use ticker::{Partner, Rng, Ticker};

/// One of a thread's two aggregates: the one it is continuing, or none yet.
struct Slot(Option<Ticker>);

impl Slot {
    /// The aggregate's id and the number its next save will have, making up
    /// an id if the next save creates it.
    fn next(&mut self, new_id: &mut Option<OriginatorId>) -> (OriginatorId, u64) {
        match &self.0 {
            Some(ticker) => (ticker.id(), ticker.next_save_number()),
            None => {
                let id = OriginatorId::from(Uuid::new_v4());
                *new_id = Some(id.clone());
                (id, 1)
            }
        }
    }

    /// Makes the events of the next save pending.
    fn prepare(&mut self, new_id: Option<OriginatorId>, of: u32, partner: Partner) {
        match (&mut self.0, new_id) {
            (Some(ticker), _) => ticker.next_save(of, partner),
            (None, Some(id)) => self.0 = Some(Ticker::first_save(id, of, partner)),
            (None, None) => unreachable!("`next` makes an id for an empty slot"),
        }
    }

    /// `(originator id, version, save, part, of)` of each pending event.
    fn pending(&self) -> Vec<(OriginatorId, u64, u64, u32, u32)> {
        let Some(ticker) = &self.0 else {
            return Vec::new();
        };
        ticker
            .pending_events()
            .iter()
            .map(|event| {
                let (save, part, of, _, _) = ticker::place(&event.payload);
                (
                    event.originator_id.clone(),
                    event.originator_version,
                    save,
                    part,
                    of,
                )
            })
            .collect()
    }

    fn ticker(&mut self) -> &mut Ticker {
        self.0
            .as_mut()
            .unwrap_or_else(|| unreachable!("prepared before it is saved"))
    }
}

fn write_loop(app: &Application, mut rng: Rng) -> ! {
    let mut slots = [Slot(None), Slot(None)];
    loop {
        // One save in four takes both aggregates in one transaction.
        let chosen: &[usize] = match rng.between(0, 7) {
            0 | 1 => &[0, 1],
            2..=4 => &[0],
            _ => &[1],
        };
        let mut new_ids = [None, None];
        let places: Vec<(OriginatorId, u64)> = chosen
            .iter()
            .map(|&slot| slots[slot].next(&mut new_ids[slot]))
            .collect();
        for (index, &slot) in chosen.iter().enumerate() {
            let partner = (chosen.len() == 2).then(|| {
                let (id, save) = &places[1 - index];
                (id.to_string(), *save)
            });
            let of = rng.between(1, 5) as u32;
            slots[slot].prepare(new_ids[slot].take(), of, partner);
        }
        let pending: Vec<_> = chosen
            .iter()
            .flat_map(|&slot| slots[slot].pending())
            .collect();

        let saved = match chosen {
            [_, _] => {
                let [first, second] = &mut slots;
                app.save(&mut [first.ticker(), second.ticker()])
            }
            _ => app.save(slots[chosen[0]].ticker()),
        };
        let recordings = saved.unwrap_or_else(|error| CHILD.fail("save", error));

        if recordings.len() != pending.len() {
            CHILD.fail(
                "save",
                format!(
                    "{} events were pending, {} recorded",
                    pending.len(),
                    recordings.len()
                ),
            );
        }
        let mut lines = String::new();
        for (recording, (id, version, save, part, of)) in recordings.iter().zip(&pending) {
            if recording.event.originator_id != *id
                || recording.event.originator_version != *version
            {
                CHILD.fail(
                    "save",
                    format!(
                        "recorded {} v{} where {id} v{version} was pending",
                        recording.event.originator_id, recording.event.originator_version
                    ),
                );
            }
            lines.push_str(&format!(
                "ack {} {id} {version} {save} {part} {of}\n",
                recording.notification_id
            ));
        }
        let mut stdout = std::io::stdout().lock();
        if let Err(error) = stdout
            .write_all(lines.as_bytes())
            .and_then(|()| stdout.flush())
        {
            CHILD.fail("writing to stdout", error);
        }
        drop(stdout);

        for &slot in chosen {
            if rng.between(0, 5) == 0 {
                slots[slot].0 = None;
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [seed, threads, store @ ..] = args.as_slice() else {
        CHILD.usage()
    };
    let (Ok(seed), Ok(threads)) = (seed.parse::<u64>(), threads.parse::<u64>()) else {
        CHILD.usage()
    };
    let app = CHILD.open(CHILD.store(Application::builder(), store));
    if let Err(error) = writeln!(std::io::stdout().lock(), "ready") {
        CHILD.fail("writing to stdout", error);
    }

    thread::scope(|scope| {
        for thread in 0..threads {
            let rng = Rng(seed ^ thread.wrapping_mul(0xd1b5_4a32_d192_ed03));
            let app = &app;
            scope.spawn(move || write_loop(app, rng));
        }
    });
}
