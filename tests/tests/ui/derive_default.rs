use es_core::prelude::*;

#[aggregate]
#[derive(Default)]
pub struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[event("Opened")]
    pub fn open() -> Self {
        Account { balance: 0 }
    }

    #[event("Deposited")]
    pub fn deposit(&mut self, amount: u64) {
        self.balance += amount;
    }
}

fn main() {
    let mut account = Account::default();
    account.deposit(5);
}
