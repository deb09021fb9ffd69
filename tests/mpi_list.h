/* SPDX-License-Identifier: MIT */
/*
 * mpi_list.h - the tests of tests/list.h that also run on the mpi backend (build/tests/run-mpi
 * runs them; see tests/mpi_run.h), besides the MPI_ONLY ones (tests/test_mpi.c,
 * test_mpi_guard.c, trace_mpi_ranks of test_trace.c). A test belongs here when its body
 * holds on every backend; the ones left out test what the mpi backend documents differently
 * (exec_backend_t in executor.h): tasks that submit to their own executor, fork(), the
 * trace's tracks, allocation-failure injection in this process, or process-pool internals.
 */
#define TEST_MPI_LIST(X) \
    X(executor_create_zero_cfg) \
    X(executor_submit_invalid) \
    X(executor_submit_calling_convention) \
    X(executor_submit_too_big) \
    X(executor_result_max_size) \
    X(executor_submit_copies_arg) \
    X(executor_submit_forget) \
    X(executor_submit_try_full) \
    X(executor_submit_blocks_when_full) \
    X(executor_submit_after_shutdown) \
    X(executor_shutdown_invalid) \
    X(executor_shutdown_drains) \
    X(executor_shutdown_cancel) \
    X(executor_shutdown_nowait) \
    X(executor_destroy_waits) \
    X(executor_stats_counts) \
    X(future_wait_timeout) \
    X(future_wait_forever) \
    X(future_wait_invalid) \
    X(future_state_transitions) \
    X(future_wait_any) \
    X(future_wait_all) \
    X(future_wait_many_invalid) \
    X(future_result_bytes) \
    X(future_result_pending) \
    X(future_task_error) \
    X(future_fault_success) \
    X(future_cancel_queued) \
    X(future_cancel_running_busy) \
    X(future_cancel_finished) \
    X(future_cancel_running) \
    X(future_on_done_once) \
    X(future_on_done_failed_and_cancelled) \
    X(future_on_done_order) \
    X(future_on_done_order_after_end) \
    X(future_on_done_invalid) \
    X(future_on_done_release_self) \
    X(future_retain_release) \
    X(future_timeout_opts) \
    X(future_timeout_config_default) \
    X(future_timeout_none_overrides) \
    X(future_timeout_counts_from_start) \
    X(cq_fd_readiness) \
    X(cq_order_one_worker) \
    X(cq_order_controlled) \
    X(cq_add_finished) \
    X(cq_add_invalid) \
    X(cq_submit_route) \
    X(cq_pop_reference) \
    X(cq_pop_blocking) \
    X(cq_destroy_with_futures) \
    X(cq_epoll_loop) \
    X(map_million_in_order) \
    X(map_small_and_odd_sizes) \
    X(map_chunk_sizes) \
    X(map_in_out_sizes_differ) \
    X(map_no_result) \
    X(map_item_failures) \
    X(map_success_summary) \
    X(map_progress) \
    X(map_progress_rate_limit) \
    X(map_unordered) \
    X(map_unordered_all_ok) \
    X(map_bad_input) \
    X(map_with_concurrent_submits) \
    X(map_two_at_once) \
    X(map_stats_items) \
    X(stream_in_order) \
    X(stream_unordered) \
    X(stream_producer_fails) \
    X(stream_consumer_stops) \
    X(stream_shutdown_cancel) \
    X(stream_bad_input) \
    X(process_map_crash_keeps_finished) \
    X(process_map_unordered_crash) \
    /* end of TEST_MPI_LIST */
