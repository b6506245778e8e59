//! The domains of PRODUCT.md section 3: each has one system of record per deployment, and
//! every event type is about exactly one of them.

use crate::EventType;

macro_rules! domains {
    ($($variant:ident => $name:literal, $owner:literal;)*) => {
        /// A domain whose records one system owns.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Domain { $($variant,)* }

        impl Domain {
            pub const ALL: &'static [Domain] = &[$(Domain::$variant,)*];

            /// The name used in configuration (`[owners] worker = "hris"`).
            pub fn as_str(self) -> &'static str {
                match self { $(Domain::$variant => $name,)* }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                match raw { $($name => Some(Domain::$variant),)* _ => None }
            }

            /// The system that usually owns the domain: the default of `[owners]`.
            pub fn usual_owner(self) -> &'static str {
                match self { $(Domain::$variant => $owner,)* }
            }
        }
    };
}

domains! {
    Customer => "customer", "crm";
    Opportunity => "opportunity", "crm";
    Contract => "contract", "crm";
    Worker => "worker", "hris";
    Assignment => "assignment", "psa";
    Time => "time", "psa";
    Expense => "expense", "psa";
    Milestone => "milestone", "psa";
    RateCard => "rate_card", "psa";
    CostRate => "cost_rate", "psa";
    Fx => "fx", "erp";
    InvoiceStatus => "invoice_status", "erp";
    Payroll => "payroll", "payroll";
    Availability => "availability", "psa";
}

impl EventType {
    /// The domain this event is about.
    pub fn domain(self) -> Domain {
        match self {
            EventType::CustomerUpserted => Domain::Customer,
            EventType::OpportunityClosedWon => Domain::Opportunity,
            EventType::ContractAmended => Domain::Contract,
            EventType::WorkerHired
            | EventType::WorkerTransferred
            | EventType::WorkerLeaveStarted
            | EventType::WorkerLeaveEnded
            | EventType::WorkerTerminated => Domain::Worker,
            EventType::RateCardUpserted => Domain::RateCard,
            EventType::CostRateUpserted => Domain::CostRate,
            EventType::FxRateUpserted => Domain::Fx,
            EventType::AssignmentChanged => Domain::Assignment,
            EventType::TimeEntryApproved | EventType::TimeEntryRejected => Domain::Time,
            EventType::ExpenseApproved | EventType::ExpenseRejected => Domain::Expense,
            EventType::MilestoneReached => Domain::Milestone,
            EventType::InvoiceStatusChanged => Domain::InvoiceStatus,
            EventType::PayrollActuals => Domain::Payroll,
            EventType::AvailabilityChanged => Domain::Availability,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_parses_back_from_its_name() {
        for domain in Domain::ALL {
            assert_eq!(Domain::parse(domain.as_str()), Some(*domain));
        }
        assert_eq!(Domain::parse("workers"), None);
    }

    #[test]
    fn the_usual_owners_are_those_of_the_product_brief() {
        assert_eq!(EventType::WorkerTerminated.domain().usual_owner(), "hris");
        assert_eq!(EventType::RateCardUpserted.domain().usual_owner(), "psa");
        assert_eq!(EventType::FxRateUpserted.domain().usual_owner(), "erp");
        assert_eq!(EventType::ContractAmended.domain().usual_owner(), "crm");
        assert_eq!(EventType::PayrollActuals.domain().usual_owner(), "payroll");
    }
}
