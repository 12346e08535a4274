//! The workloads' sizes: fixed at full size (see `benchmarks/README.md`), small
//! for a smoke run.

#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub runs: usize,
    /// W1/W2 accounts.
    pub accounts: usize,
    /// W1 commands per account after opening.
    pub commands: u64,
    /// W2 cycles per account.
    pub cycles: u64,
    /// W3 events in the replayed account.
    pub replay_events: u64,
    /// W3 loads per run (the median is reported).
    pub loads: usize,
    pub snapshot_every: u64,
    /// W4 page size.
    pub page: usize,
    /// W5 saves shared by the writer threads.
    pub concurrent_saves: usize,
    pub writer_threads: [usize; 3],
    pub zipf_accounts: usize,
    pub zipf_threads: usize,
    pub zipf_commands_per_thread: usize,
    /// Events in the log the memory probe reads.
    pub log_events: usize,
    /// Events of the account the memory probe replays.
    pub memory_replay_events: u64,
    /// F1: events in the leader's log a follower catches up with.
    pub follower_log_events: usize,
    /// F2: leader saves, and their rate.
    pub latency_saves: usize,
    pub latency_saves_per_second: u64,
    /// H1: events in the log read over HTTP.
    pub http_log_events: usize,
    /// A1: deposits sent at each number of clients.
    pub api_requests: usize,
    /// R1: entities in the master's store, and the changes of each
    /// (created, then amended).
    pub replicated_entities: usize,
    pub changes_per_entity: u64,
    /// R2: master saves of one change each while the subscription is live,
    /// and their rate.
    pub lag_changes: usize,
    pub lag_changes_per_second: u64,
}

impl Sizes {
    pub const FULL: Sizes = Sizes {
        runs: 3,
        accounts: 2_000,
        commands: 9,
        cycles: 5,
        replay_events: 10_000,
        loads: 5,
        snapshot_every: 100,
        page: 1_000,
        concurrent_saves: 4_000,
        writer_threads: [1, 4, 16],
        zipf_accounts: 100,
        zipf_threads: 16,
        zipf_commands_per_thread: 250,
        log_events: 1_000_000,
        memory_replay_events: 100_000,
        follower_log_events: 100_000,
        latency_saves: 500,
        latency_saves_per_second: 100,
        http_log_events: 100_000,
        api_requests: 10_000,
        replicated_entities: 1_000,
        changes_per_entity: 20,
        lag_changes: 2_000,
        lag_changes_per_second: 100,
    };

    pub const QUICK: Sizes = Sizes {
        runs: 1,
        accounts: 20,
        replay_events: 300,
        loads: 2,
        concurrent_saves: 160,
        zipf_accounts: 10,
        zipf_commands_per_thread: 10,
        log_events: 20_000,
        memory_replay_events: 2_000,
        follower_log_events: 2_000,
        latency_saves: 30,
        http_log_events: 2_000,
        api_requests: 400,
        replicated_entities: 100,
        changes_per_entity: 5,
        lag_changes: 200,
        ..Sizes::FULL
    };
}
