//! Black-box tests of the HTTP API: each test spawns the real router on port 0 over a fresh
//! store and in-process sandbox systems. One suite, two stores: every test runs once on the
//! embedded SQLite store (`sqlite::…`) and once on PostgreSQL (`postgres::…`, a database of
//! its own on `PSHUB_TEST_POSTGRES`, by default the machine's server).

mod bad_input;
mod contracts;
mod customers;
mod decimals;
mod exceptions;
mod forecast;
mod helpers;
mod hooks;
mod invoices;
mod leakage;
mod lines;
mod operations;
mod opportunity;
mod payroll;
mod resources;
mod restart;
mod routing;
mod systems_of_record;
mod time_to_bill;
mod workers;

/// Instantiates every listed test for each backend. A test written but not listed here is
/// never called, which the dead-code lint turns into a failed build.
macro_rules! front_door_suite {
    ($($module:ident: [$($test:ident,)*],)*) => {
        front_door_suite!(@backend sqlite, Sqlite; $($module: [$($test,)*],)*);
        front_door_suite!(@backend postgres, Postgres; $($module: [$($test,)*],)*);
    };
    (@backend $backend:ident, $variant:ident; $($module:ident: [$($test:ident,)*],)*) => {
        mod $backend {
            $(
                mod $module {
                    $(
                        #[tokio::test]
                        async fn $test() {
                            crate::$module::$test(crate::helpers::Backend::$variant).await;
                        }
                    )*
                }
            )*
        }
    };
}

front_door_suite! {
    hooks: [
        a_signed_stripe_invoice_paid_reaches_the_invoice_and_the_crm,
        a_request_that_does_not_verify_is_refused_with_401_and_kept_never_applied,
        a_record_that_fails_its_mapping_is_quarantined_with_mapping_version_and_path,
        a_psa_in_kantatas_shape_bills_as_the_canonical_path_does,
        a_psa_in_kantatas_shape_staffs_and_prices_through_its_bookings_and_rate_cards,
        the_catalog_lists_each_system_with_its_connectors_flows_and_health,
        a_replay_under_a_new_mapping_version_shows_the_difference_dry_and_applies_once,
        stripe_events_without_the_metadata_find_the_invoice_through_the_id_registry,
    ],
    routing: [
        work_goes_to_the_erp_its_route_names_and_a_shadow_route_posts_a_copy,
        a_reload_moves_new_work_only_and_a_reversal_follows_its_line,
    ],
    leakage: [
        the_leakage_report_finds_each_kind_with_its_amount_per_currency,
    ],
    resources: [
        the_view_reconciles_its_sources_flags_disagreements_and_hides_names_from_masked_targets,
    ],
    payroll: [
        bad_rows_are_reported_with_their_lines_and_kept_in_quarantine_while_good_rows_load,
        actual_cost_is_spread_pro_rata_to_the_cent_and_the_variance_opens_finance_cases,
        a_contractors_cost_comes_from_their_rate_agreement_never_from_payroll,
        a_payroll_actuals_event_takes_the_same_path_as_a_file_row,
        a_load_larger_than_a_slice_opens_each_case_once,
    ],
    invoices: [
        paid_reaches_the_crm_and_disputed_opens_a_finance_case,
    ],
    contracts: [
        a_milestone_bills_one_line_however_often_it_is_sent,
        an_amendment_changes_the_rate_from_its_effective_date_only,
        a_capped_contract_posts_up_to_its_cap_and_holds_the_line_that_crosses_it,
        tax_codes_follow_the_configured_legal_entities,
    ],
    forecast: [
        the_forecast_counts_approved_assignments_only_and_follows_each_change,
        lists_show_what_the_hub_knows_paged_and_filtered,
        hours_beyond_an_assignment_still_bill_and_open_one_pmo_case,
    ],
    workers: [
        worker_history_has_its_dates_and_hides_personal_fields_from_a_viewer,
        a_termination_and_a_leave_with_open_assignments_open_pmo_cases_naming_them,
        a_late_older_assignment_version_neither_undoes_an_approval_nor_revives_a_cancellation,
        an_assignment_approved_for_dates_when_the_worker_cannot_work_opens_a_case,
        a_workers_cost_rate_reaches_the_erp_as_a_dated_cost_price,
    ],
    customers: [
        a_customer_resent_under_another_spelling_with_the_same_tax_id_is_one_customer,
        another_systems_customer_is_an_alias_that_never_overwrites_the_master,
        the_same_name_with_another_tax_id_opens_a_possible_duplicate_case,
    ],
    systems_of_record: [
        a_worker_change_from_the_psa_is_held_and_applied_only_when_resolved,
        a_dismissed_change_from_a_system_that_does_not_own_it_is_dropped,
        the_configured_owner_is_the_one_whose_changes_apply,
    ],
    bad_input: [
        bodies_that_are_not_events_are_refused_whole,
        oversized_bodies_and_arrays_are_refused_with_413,
        a_missing_or_wrong_token_is_refused_with_401_and_health_needs_none,
        events_that_break_the_contract_are_quarantined_with_the_field_named,
        a_quarantined_event_can_be_corrected_and_replayed_once,
        bad_parameters_and_unknown_routes_are_4xx,
        the_viewer_role_sees_no_personal_data,
    ],
    decimals: [
        decimal_edge_values_in_every_decimal_field_never_answer_5xx,
        values_out_of_bounds_are_quarantined_with_the_field_named,
        a_key_given_twice_is_quarantined_not_read_as_the_last,
        the_inbox_keeps_the_payload_as_it_arrived,
        every_event_type_has_a_flow_and_is_reported_as_it_stands,
    ],
    exceptions: [
        a_dismissed_case_is_written_off_and_cannot_be_resolved,
        a_rejection_withdraws_the_case_that_held_the_entry,
        only_the_owning_team_or_an_admin_may_act_on_a_case,
        a_case_resolved_into_another_failure_is_handed_over_to_its_owner,
        actions_record_who_acted_and_their_note_on_the_timeline,
    ],
    lines: [
        pages_follow_each_other_in_a_stable_order_without_gaps_or_repeats,
    ],
    operations: [
        technical_failures_retry_then_dead_letter_and_a_replay_posts_once,
        a_transaction_timeline_shows_each_step_and_the_outcome,
        health_metrics_and_the_openapi_document_answer,
        a_closed_deal_is_pending_until_its_project_is_provisioned_in_the_erp,
        every_flow_publishes_its_business_events_masked_per_target,
        the_openapi_document_describes_every_event_and_the_answers_as_they_are,
    ],
    opportunity: [
        a_deal_sent_again_and_under_new_ids_provisions_each_system_once,
        a_project_code_taken_by_another_deal_is_an_integration_case,
        a_deal_whose_rate_card_is_unknown_still_provisions,
        lines_wait_on_the_erp_step_and_show_blocked_when_it_dead_letters,
    ],
    restart: [
        a_restart_over_every_kind_of_event_answers_as_before,
        a_stored_event_that_no_longer_reads_is_quarantined_and_the_start_goes_on,
    ],
    time_to_bill: [
        one_event_sent_three_times_gives_one_line,
        a_rejection_after_posting_reverses_to_zero_and_a_reapproval_posts_once_more,
        an_inactive_workers_entry_opens_a_pmo_case_and_earlier_entries_still_bill,
        a_leave_holds_from_its_start_through_the_day_before_it_ends,
        a_missing_rate_opens_a_finance_case_and_the_rate_card_then_resolving_posts_once,
        checks_run_in_order_and_each_failure_goes_to_its_owner,
        a_contract_in_another_currency_converts_with_the_latest_fx_rate_rounding_twice,
        expenses_bill_at_cost_and_a_missing_fx_rate_is_finances,
        the_same_id_with_another_body_is_a_conflict_kept_and_not_applied,
        summary_keeps_conservation_of_money,
        hours_beyond_the_daily_limit_hold_the_entry_that_crossed_it,
        an_expense_and_a_time_entry_with_one_id_post_apart,
    ],
}
