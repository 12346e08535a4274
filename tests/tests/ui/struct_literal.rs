use es_core::prelude::*;

#[aggregate]
pub struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[event("Opened")]
    pub fn open() -> Self {
        Account { balance: 0 }
    }
}

fn main() {
    let _account = Account { balance: 0 };
}
