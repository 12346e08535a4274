mod bank {
    use es_core::prelude::*;

    #[aggregate]
    pub struct Account {
        pub balance: u64,
    }

    #[aggregate]
    impl Account {
        #[event("Opened")]
        pub fn open() -> Self {
            Account { balance: 0 }
        }
    }
}

fn main() {
    let _account = bank::Account { balance: 0 };
}
