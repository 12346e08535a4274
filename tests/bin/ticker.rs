//! The aggregate the crash writer saves and the crash test checks: each event
//! says which save of its aggregate it came from and which part of that save it
//! is, so a save found only in part can be told from one found whole.

use es_core::prelude::*;

/// The other aggregate saved in the same transaction: its id and its save number.
pub type Partner = Option<(String, u64)>;

#[aggregate]
pub struct Ticker {
    /// How many saves of this aggregate there have been.
    saves: u64,
}

#[aggregate]
impl Ticker {
    #[event("Started", id = &id)]
    fn started(id: OriginatorId, save: u64, part: u32, of: u32, partner: Partner) -> Self {
        let _ = (id, part, of, partner);
        Ticker { saves: save }
    }

    #[event("Ticked")]
    fn ticked(&mut self, save: u64, part: u32, of: u32, partner: Partner) {
        let _ = (part, of, partner);
        self.saves = save;
    }

    /// A new aggregate with the events of its first save pending: `of` events
    /// (at least one), the creation event first.
    pub fn first_save(id: OriginatorId, of: u32, partner: Partner) -> Self {
        let mut ticker = Ticker::started(id, 1, 1, of, partner.clone());
        for part in 2..=of {
            ticker.ticked(1, part, of, partner.clone());
        }
        ticker
    }

    /// Makes `of` events pending for the aggregate's next save.
    pub fn next_save(&mut self, of: u32, partner: Partner) {
        let save = self.saves + 1;
        for part in 1..=of {
            self.ticked(save, part, of, partner.clone());
        }
    }

    /// The number the aggregate's next save will have.
    pub fn next_save_number(&self) -> u64 {
        self.saves + 1
    }
}

/// Where an event stands: `(save, part, of, partner)`, and whether it is the creation event.
pub fn place(event: &TickerEvent) -> (u64, u32, u32, &Partner, bool) {
    match event {
        TickerEvent::Started {
            save,
            part,
            of,
            partner,
            ..
        } => (*save, *part, *of, partner, true),
        TickerEvent::Ticked {
            save,
            part,
            of,
            partner,
        } => (*save, *part, *of, partner, false),
    }
}

/// splitmix64: the test's kill times and the writer's save sizes, from one
/// seed, so that a failing run can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}
