/* SPDX-License-Identifier: MIT */
/*
 * list.h - every test of the suite, one per line: X(name, flags), where TEST(name) defines it.
 *
 * Flags (combine with |, or 0 for none):
 *   BOTH_BACKENDS   run once per backend (test_backend = threads, then processes)
 *   THREADS_ONLY    run on the thread backend only (what 0 does too; says it on purpose)
 *   PROCESSES_ONLY  run on the process backend only
 *   SLOW            300 s alarm instead of 30 s (times EXEC_TEST_TIMEOUT_SCALE)
 *   NO_HYGIENE      skip the leftover checks (children, threads, fds, /dev/shm) for a test
 *                   that checks those itself
 *   MPI_ONLY        run on the mpi backend only (build/tests/run-mpi; tests/mpi_run.h);
 *                   tests/mpi_list.h names the other tests that also run there
 *   MPI_SELF        with MPI_ONLY: the test is not run as an MPI job; it runs in the test
 *                   child and starts its own jobs ($EXEC_TEST_MPIRUN, tests/test_mpi_guard.c)
 *
 * Keep the lines grouped by source file under a comment naming the file, and add new lines
 * at the end of your file's group. Every line ends with a backslash; the table ends with the
 * comment line at the bottom.
 */
#define TEST_LIST(X)                                                                       \
    /* tests/test_header.c */                                                              \
    X(header_c11_alone, 0)                                                                 \
    X(header_cxx, 0)                                                                       \
    X(header_version, 0)                                                                   \
    X(header_errors, 0)                                                                    \
    /* tests/test_tooling.c */                                                             \
    X(tooling_install, SLOW)                                                               \
    X(tooling_check_symbols, 0)                                                            \
    X(tooling_readme_example, 0)                                                           \
    X(tooling_no_test_hooks, 0)                                                            \
    X(tooling_layers, 0)                                                                   \
    X(tooling_sizes, 0)                                                                    \
    /* tests/test_cmake.c */                                                               \
    X(tooling_cmake_package, SLOW)                                                         \
    /* tests/test_budget.c */                                                              \
    X(budget_null_out, THREADS_ONLY)                                                       \
    X(budget_fills_struct, THREADS_ONLY)                                                   \
    X(budget_missing_dir, THREADS_ONLY)                                                    \
    X(budget_v2_quota, THREADS_ONLY)                                                       \
    X(budget_v2_garbage, THREADS_ONLY)                                                     \
    X(budget_v2_wins_over_v1, THREADS_ONLY)                                                \
    X(budget_v1_quota, THREADS_ONLY)                                                       \
    X(budget_v1_garbage, THREADS_ONLY)                                                     \
    X(budget_cgroup_limits_workers, THREADS_ONLY)                                          \
    X(budget_affinity_one_cpu, THREADS_ONLY)                                               \
    X(budget_env_overrides, THREADS_ONLY)                                                  \
    X(budget_env_invalid_ignored, THREADS_ONLY)                                            \
    X(budget_executor_default_workers, BOTH_BACKENDS)                                      \
    /* tests/test_map.c */                                                                 \
    X(map_million_in_order, BOTH_BACKENDS)                                                 \
    X(map_small_and_odd_sizes, BOTH_BACKENDS)                                              \
    X(map_chunk_sizes, BOTH_BACKENDS)                                                      \
    X(map_in_out_sizes_differ, BOTH_BACKENDS)                                              \
    X(map_no_result, BOTH_BACKENDS)                                                        \
    X(map_item_failures, BOTH_BACKENDS)                                                    \
    X(map_success_summary, BOTH_BACKENDS)                                                  \
    X(map_progress, BOTH_BACKENDS)                                                         \
    X(map_progress_rate_limit, BOTH_BACKENDS)                                              \
    X(map_unordered, BOTH_BACKENDS)                                                        \
    X(map_unordered_all_ok, BOTH_BACKENDS)                                                 \
    X(map_bad_input, BOTH_BACKENDS)                                                        \
    X(map_with_concurrent_submits, BOTH_BACKENDS)                                          \
    X(map_two_at_once, BOTH_BACKENDS)                                                      \
    X(map_stats_items, BOTH_BACKENDS)                                                      \
    /* tests/test_stream.c */                                                              \
    X(stream_in_order, BOTH_BACKENDS)                                                      \
    X(stream_unordered, BOTH_BACKENDS)                                                     \
    X(stream_memory_flat, BOTH_BACKENDS | SLOW)                                            \
    X(stream_producer_fails, BOTH_BACKENDS)                                                \
    X(stream_consumer_stops, BOTH_BACKENDS)                                                \
    X(stream_shutdown_cancel, BOTH_BACKENDS)                                               \
    X(process_stream_crash, PROCESSES_ONLY)                                                \
    X(stream_bad_input, BOTH_BACKENDS)                                                     \
    /* tests/test_seam.c */                                                                \
    X(seam_third_backend, 0)                                                               \
    X(seam_backend_checks_its_config, 0)                                                   \
    X(seam_refuses_bad_tables, 0)                                                          \
    /* tests/test_map_faults.c */                                                          \
    X(map_cancel_keeps_ran, BOTH_BACKENDS)                                                 \
    X(process_map_crash_keeps_finished, PROCESSES_ONLY)                                    \
    X(process_map_unordered_crash, PROCESSES_ONLY)                                         \
    /* tests/test_pool.c */                                                                \
    X(pool_recursive_chain, THREADS_ONLY)                                                  \
    X(pool_fan_out_tree, THREADS_ONLY)                                                     \
    X(pool_max_tasks_per_child_1, THREADS_ONLY)                                            \
    X(pool_max_tasks_per_child_3, THREADS_ONLY)                                            \
    X(pool_max_tasks_per_child_10, THREADS_ONLY)                                           \
    X(pool_worker_signals_blocked, THREADS_ONLY)                                           \
    X(pool_worker_sched_batch, THREADS_ONLY)                                               \
    X(pool_worker_sched_inherited, THREADS_ONLY)                                           \
    X(pool_worker_sched_initializer, THREADS_ONLY)                                         \
    X(pool_no_signal_handlers, BOTH_BACKENDS)                                              \
    X(pool_worker_count, THREADS_ONLY)                                                     \
    X(pool_wait_other_executor, THREADS_ONLY)                                              \
    X(pool_nested_map, THREADS_ONLY)                                                       \
    X(pool_shutdown_runs_queued, THREADS_ONLY)                                             \
    /* tests/test_stress.c */                                                              \
    X(stress_million_tasks, BOTH_BACKENDS | SLOW)                                          \
    X(stress_cancel_race, BOTH_BACKENDS | SLOW)                                            \
    X(stress_on_done_once, BOTH_BACKENDS | SLOW)                                           \
    /* tests/test_fork.c */                                                                \
    X(fork_child_sees_shutdown, THREADS_ONLY)                                              \
    X(fork_while_submitting, THREADS_ONLY)                                                 \
    /* tests/test_errors.c */                                                              \
    X(errors_values_fixed, 0)                                                              \
    X(errors_names, 0)                                                                     \
    X(errors_messages, 0)                                                                  \
    X(errors_unknown_codes, 0)                                                             \
    X(errors_strings_static, 0)                                                            \
    X(errors_thread_safe, 0)                                                               \
    X(errors_bad_initializer, BOTH_BACKENDS)                                               \
    X(errors_broken_text_names_no_cause, 0)                                                \
    /* tests/test_executor.c */                                                            \
    X(executor_version, 0)                                                                 \
    X(executor_create_null_cfg, 0)                                                         \
    X(executor_create_zero_cfg, BOTH_BACKENDS)                                             \
    X(executor_create_invalid, BOTH_BACKENDS)                                              \
    X(executor_create_process_fields_on_threads, THREADS_ONLY)                             \
    X(executor_create_process_field_ranges, BOTH_BACKENDS)                                 \
    X(executor_create_smallest_limits, BOTH_BACKENDS)                                      \
    X(executor_submit_invalid, BOTH_BACKENDS)                                              \
    X(executor_submit_calling_convention, BOTH_BACKENDS)                                   \
    X(executor_submit_too_big, BOTH_BACKENDS)                                              \
    X(executor_result_max_size, BOTH_BACKENDS)                                             \
    X(executor_submit_copies_arg, BOTH_BACKENDS)                                           \
    X(executor_submit_forget, BOTH_BACKENDS)                                               \
    X(executor_submit_try_full, BOTH_BACKENDS)                                             \
    X(executor_submit_blocks_when_full, BOTH_BACKENDS)                                     \
    X(executor_big_args_deep_window, BOTH_BACKENDS)                                        \
    X(process_big_args_bounded_queue, PROCESSES_ONLY)                                      \
    X(process_big_args_cancel_wakes, PROCESSES_ONLY)                                       \
    X(executor_submit_inside_task_unbounded, THREADS_ONLY)                                 \
    X(executor_submit_after_shutdown, BOTH_BACKENDS)                                       \
    X(executor_shutdown_invalid, BOTH_BACKENDS)                                            \
    X(executor_shutdown_drains, BOTH_BACKENDS)                                             \
    X(executor_shutdown_cancel, BOTH_BACKENDS)                                             \
    X(executor_shutdown_nowait, BOTH_BACKENDS)                                             \
    X(executor_destroy_null, 0)                                                            \
    X(executor_destroy_waits, BOTH_BACKENDS)                                               \
    X(executor_destroy_in_task, THREADS_ONLY)                                              \
    X(executor_destroy_in_deadline_callback, BOTH_BACKENDS)                                \
    X(executor_shutdown_nowait_in_task, THREADS_ONLY)                                      \
    X(executor_stats_counts, BOTH_BACKENDS)                                                \
    /* tests/test_future.c */                                                              \
    X(future_wait_timeout, BOTH_BACKENDS)                                                  \
    X(future_wait_forever, BOTH_BACKENDS)                                                  \
    X(future_wait_invalid, BOTH_BACKENDS)                                                  \
    X(future_state_transitions, BOTH_BACKENDS)                                             \
    X(future_wait_any, BOTH_BACKENDS)                                                      \
    X(future_wait_all, BOTH_BACKENDS)                                                      \
    X(future_wait_many_invalid, BOTH_BACKENDS)                                             \
    X(future_result_bytes, BOTH_BACKENDS)                                                  \
    X(future_result_pending, BOTH_BACKENDS)                                                \
    X(future_task_error, BOTH_BACKENDS)                                                    \
    X(future_fault_success, BOTH_BACKENDS)                                                 \
    X(future_cancel_queued, BOTH_BACKENDS)                                                 \
    X(future_cancel_running_busy, BOTH_BACKENDS)                                           \
    X(future_cancel_finished, BOTH_BACKENDS)                                               \
    X(future_cancel_running, BOTH_BACKENDS)                                                \
    X(future_on_done_once, BOTH_BACKENDS)                                                  \
    X(future_on_done_failed_and_cancelled, BOTH_BACKENDS)                                  \
    X(future_on_done_order, BOTH_BACKENDS)                                                 \
    X(future_on_done_order_after_end, BOTH_BACKENDS)                                       \
    X(future_on_done_invalid, BOTH_BACKENDS)                                               \
    X(future_on_done_release_self, BOTH_BACKENDS)                                          \
    X(future_retain_release, BOTH_BACKENDS)                                                \
    X(future_should_stop_outside_task, 0)                                                  \
    X(future_timeout_opts, BOTH_BACKENDS)                                                  \
    X(future_timeout_config_default, BOTH_BACKENDS)                                        \
    X(future_timeout_none_overrides, BOTH_BACKENDS)                                        \
    X(future_timeout_counts_from_start, BOTH_BACKENDS)                                     \
    X(future_memory_returns, BOTH_BACKENDS)                                                \
    /* tests/test_cq.c */                                                                  \
    X(cq_create_destroy, 0)                                                                \
    X(cq_fd_properties, 0)                                                                 \
    X(cq_pop_timeout, 0)                                                                   \
    X(cq_fd_readiness, BOTH_BACKENDS)                                                      \
    X(cq_order_one_worker, BOTH_BACKENDS)                                                  \
    X(cq_order_controlled, BOTH_BACKENDS)                                                  \
    X(cq_add_finished, BOTH_BACKENDS)                                                      \
    X(cq_add_invalid, BOTH_BACKENDS)                                                       \
    X(cq_submit_route, BOTH_BACKENDS)                                                      \
    X(cq_pop_reference, BOTH_BACKENDS)                                                     \
    X(cq_pop_blocking, BOTH_BACKENDS)                                                      \
    X(cq_destroy_with_futures, BOTH_BACKENDS)                                              \
    X(cq_epoll_loop, BOTH_BACKENDS)                                                        \
    /* tests/test_shm.c */                                                                 \
    X(shm_create_named_basic, THREADS_ONLY)                                                \
    X(shm_generated_names, THREADS_ONLY)                                                   \
    X(shm_anonymous_invisible, THREADS_ONLY)                                               \
    X(shm_attach_shares_bytes, THREADS_ONLY)                                               \
    X(shm_bad_names, THREADS_ONLY)                                                         \
    X(shm_bad_arguments, THREADS_ONLY)                                                     \
    X(shm_huge_sizes, THREADS_ONLY)                                                        \
    X(shm_full_devshm, THREADS_ONLY)                                                       \
    X(shm_create_existing_busy, THREADS_ONLY)                                              \
    X(shm_attach_missing, THREADS_ONLY)                                                    \
    X(shm_rdonly_attach_segv, THREADS_ONLY)                                                \
    X(shm_rdonly_map_segv, THREADS_ONLY)                                                   \
    X(shm_ref_named_in_task, BOTH_BACKENDS)                                                \
    X(shm_ref_anonymous_in_task, BOTH_BACKENDS)                                            \
    X(shm_buffer_before_executor, BOTH_BACKENDS)                                           \
    X(shm_task_writes_parent_reads, BOTH_BACKENDS)                                         \
    X(shm_map_cached_per_worker, BOTH_BACKENDS)                                            \
    X(shm_unlink_while_task_maps, BOTH_BACKENDS)                                           \
    X(shm_worker_crash_holding_mapping, PROCESSES_ONLY)                                    \
    X(shm_fork_child_maps_ref, THREADS_ONLY)                                               \
    X(shm_fork_child_crash_holding_mapping, THREADS_ONLY)                                  \
    X(shm_trim_drops_unlinked, THREADS_ONLY)                                               \
    X(shm_map_bad_refs, THREADS_ONLY)                                                      \
    X(shm_create_close_cycles, THREADS_ONLY)                                               \
    X(shm_sigkill_creator_cleans, THREADS_ONLY)                                            \
    X(shm_sigkill_creator_with_forked_children, THREADS_ONLY)                              \
    X(shm_exit_and_exec_clean_persistent_stays, THREADS_ONLY)                              \
    X(shm_attacher_never_unlinks, THREADS_ONLY)                                            \
    X(shm_guardian_lifecycle, THREADS_ONLY)                                                \
    X(shm_guardian_replaced_after_kill, THREADS_ONLY)                                      \
    X(shm_guardian_spares_recreated_names, THREADS_ONLY)                                   \
    X(shm_threads_and_fork, THREADS_ONLY)                                                  \
    /* tests/test_process.c */                                                             \
    X(process_crash_segv, PROCESSES_ONLY)                                                  \
    X(process_crash_abort, PROCESSES_ONLY)                                                 \
    X(process_crash_exit, PROCESSES_ONLY)                                                  \
    X(process_crash_kill9, PROCESSES_ONLY)                                                 \
    X(process_crash_then_10000_tasks, PROCESSES_ONLY)                                      \
    X(process_big_args_workers_change, PROCESSES_ONLY)                                     \
    X(process_map_crash_chunk, PROCESSES_ONLY)                                             \
    X(process_deadline_kills, PROCESSES_ONLY)                                              \
    X(process_deadline_should_stop, PROCESSES_ONLY)                                        \
    X(process_cancel_running, PROCESSES_ONLY)                                              \
    X(process_cancel_queued_in_ring, PROCESSES_ONLY)                                       \
    X(process_max_tasks_exact, PROCESSES_ONLY)                                             \
    X(process_max_rss, PROCESSES_ONLY)                                                     \
    X(process_max_age, PROCESSES_ONLY)                                                     \
    X(process_recycle_jitter, PROCESSES_ONLY)                                              \
    X(process_stats_by_reason, PROCESSES_ONLY)                                             \
    X(process_shutdown_during_recycling, PROCESSES_ONLY)                                   \
    X(process_spawn_failure, PROCESSES_ONLY)                                               \
    X(process_initializer_ok, PROCESSES_ONLY)                                              \
    X(process_initializer_fails, PROCESSES_ONLY)                                           \
    X(process_crash_breaker, PROCESSES_ONLY)                                               \
    X(process_orphans_forkserver, PROCESSES_ONLY)                                          \
    X(process_orphans_fork, PROCESSES_ONLY)                                                \
    X(process_hygiene_forkserver, PROCESSES_ONLY | NO_HYGIENE)                             \
    X(process_hygiene_fork, PROCESSES_ONLY | NO_HYGIENE)                                   \
    X(process_worker_signals_and_fds, PROCESSES_ONLY)                                      \
    X(process_sigchld_ignored, PROCESSES_ONLY)                                             \
    X(process_eintr_storm, PROCESSES_ONLY)                                                 \
    X(process_recycle_under_malloc_storm, PROCESSES_ONLY)                                  \
    X(process_largest_messages, PROCESSES_ONLY)                                            \
    X(process_result_too_big, PROCESSES_ONLY)                                              \
    X(backend_globals_snapshot, BOTH_BACKENDS)                                             \
    X(backend_nested_submit, BOTH_BACKENDS)                                                \
    X(process_example_crash, PROCESSES_ONLY)                                               \
    X(process_example_deadline, PROCESSES_ONLY)                                            \
    X(process_example_leaky, PROCESSES_ONLY)                                               \
    /* tests/test_docs.c */                                                                \
    X(tooling_docs_api_complete, 0)                                                        \
    X(tooling_docs_names_exist, 0)                                                         \
    X(tooling_docs_man_pages, 0)                                                           \
    X(tooling_docs_man_errors, 0)                                                          \
    X(tooling_docs_code_blocks, SLOW)                                                      \
    X(tooling_docs_man_groff, 0)                                                           \
    /* tests/test_examples.c */                                                            \
    X(tooling_example_all_listed, 0)                                                       \
    X(tooling_example_01_hello, 0)                                                         \
    X(tooling_example_02_cpu_bound, PROCESSES_ONLY)                                        \
    X(tooling_example_03_c_gil, PROCESSES_ONLY)                                            \
    X(tooling_example_04_io_fanout, PROCESSES_ONLY)                                        \
    X(tooling_example_05_event_loop, PROCESSES_ONLY)                                       \
    X(tooling_example_05_event_loop_threads, 0)                                            \
    X(tooling_example_06_shared_memory, PROCESSES_ONLY)                                    \
    X(tooling_example_06_shared_memory_threads, 0)                                         \
    X(tooling_example_07_crash, PROCESSES_ONLY)                                            \
    X(tooling_example_08_deadline, PROCESSES_ONLY)                                         \
    X(tooling_example_09_leaky, PROCESSES_ONLY)                                            \
    X(tooling_example_10_sizing, 0)                                                        \
    X(tooling_example_11_nested, 0)                                                        \
    X(tooling_example_12_progress, 0)                                                      \
    X(tooling_example_15_word_count, PROCESSES_ONLY)                                       \
    X(tooling_example_14_timeline, PROCESSES_ONLY)                                         \
    X(tooling_example_13_mpi, THREADS_ONLY)                                                \
    X(tooling_example_demo, PROCESSES_ONLY | SLOW)                                         \
    /* tests/test_alloc.c */                                                               \
    X(alloc_map_no_per_item, BOTH_BACKENDS)                                                \
    X(alloc_timer_heap_nomem, THREADS_ONLY)                                                \
    X(alloc_map_unordered_no_per_item, BOTH_BACKENDS)                                      \
    X(alloc_submit_small_steady, BOTH_BACKENDS)                                            \
    X(alloc_submit_large_one_each, BOTH_BACKENDS)                                          \
    X(alloc_submit_big_steady, BOTH_BACKENDS)                                              \
    X(alloc_fail_create, BOTH_BACKENDS)                                                    \
    X(alloc_fail_submit, BOTH_BACKENDS)                                                    \
    X(alloc_fail_arena, BOTH_BACKENDS)                                                     \
    X(alloc_submit_cq_steady, BOTH_BACKENDS)                                               \
    X(alloc_fail_submit_cq, BOTH_BACKENDS)                                                 \
    X(alloc_fail_map, BOTH_BACKENDS)                                                       \
    X(alloc_fail_map_unordered, BOTH_BACKENDS)                                             \
    X(alloc_fail_map_many_workers, THREADS_ONLY)                                           \
    X(alloc_fail_on_done, BOTH_BACKENDS)                                                   \
    X(alloc_fail_wait_any, BOTH_BACKENDS)                                                  \
    X(alloc_fail_cq_create, THREADS_ONLY)                                                  \
    X(alloc_fail_shm_create, THREADS_ONLY)                                                 \
    X(alloc_fail_shm_attach, THREADS_ONLY)                                                 \
    X(alloc_fail_shm_map, THREADS_ONLY)                                                    \
    X(alloc_fail_all_under_load, BOTH_BACKENDS)                                            \
    X(alloc_fail_nested_wait, THREADS_ONLY)                                                \
    X(alloc_thread_create_fails, BOTH_BACKENDS)                                            \
    X(alloc_thread_retire_fails, THREADS_ONLY)                                             \
    X(alloc_thread_timer_fails, THREADS_ONLY)                                              \
    X(alloc_fork_create_fails, PROCESSES_ONLY)                                             \
    X(alloc_fork_shm_guardian_fails, THREADS_ONLY)                                         \
    X(alloc_fork_spawn_fails, PROCESSES_ONLY)                                              \
    /* tests/test_trace.c */                                                               \
    X(trace_task_spans, BOTH_BACKENDS)                                                     \
    X(trace_map_chunks, BOTH_BACKENDS)                                                     \
    X(trace_crash, PROCESSES_ONLY)                                                         \
    X(trace_deadline, BOTH_BACKENDS)                                                       \
    X(trace_cancel, BOTH_BACKENDS)                                                         \
    X(trace_cancel_at_shutdown, BOTH_BACKENDS)                                             \
    X(trace_recycle, BOTH_BACKENDS)                                                        \
    X(trace_env_overrides, THREADS_ONLY)                                                   \
    X(trace_bad_path, BOTH_BACKENDS)                                                       \
    X(trace_written_while_running, BOTH_BACKENDS)                                          \
    X(trace_executors_share_a_file, THREADS_ONLY)                                          \
    X(trace_survives_sigkill, BOTH_BACKENDS)                                               \
    X(trace_memory_bounded, BOTH_BACKENDS)                                                 \
    X(trace_alloc_fails, BOTH_BACKENDS)                                                    \
    X(trace_thread_create_fails, BOTH_BACKENDS)                                            \
    X(trace_dropped_counted, BOTH_BACKENDS)                                                \
    X(trace_mpi_ranks, MPI_ONLY)                                                           \
    /* tests/test_broken.c */                                                              \
    X(init_runs_in_every_worker, BOTH_BACKENDS)                                            \
    X(init_returns_nonzero_breaks, BOTH_BACKENDS)                                          \
    X(init_exit_breaks, PROCESSES_ONLY)                                                    \
    X(init_signal_breaks, PROCESSES_ONLY)                                                  \
    X(init_thread_exit_breaks, THREADS_ONLY)                                               \
    X(init_fails_in_recycled_worker, BOTH_BACKENDS)                                        \
    X(broken_zygote_killed, PROCESSES_ONLY)                                                \
    /* tests/test_thread_exit.c */                                                         \
    X(thread_exit_in_task, THREADS_ONLY)                                                   \
    X(thread_exit_cancelled_by_application, THREADS_ONLY)                                  \
    X(thread_exit_nested, THREADS_ONLY)                                                    \
    X(thread_exit_deep_nesting, THREADS_ONLY)                                              \
    X(thread_exit_in_map_item, THREADS_ONLY)                                               \
    /* tests/test_resources.c */                                                           \
    X(resources_few_fds_forkserver, PROCESSES_ONLY)                                        \
    X(resources_few_fds_fork, PROCESSES_ONLY)                                              \
    /* tests/test_mpi.c */                                                                 \
    X(mpi_backend_missing, THREADS_ONLY)                                                   \
    X(mpi_remote_segfault, MPI_ONLY)                                                       \
    X(mpi_deadline_kills_only_that_task, MPI_ONLY)                                         \
    X(mpi_cancel_running_remote, MPI_ONLY)                                                 \
    X(mpi_rank0_exits_without_destroy, MPI_ONLY)                                           \
    X(mpi_bad_function_pointer, MPI_ONLY)                                                  \
    X(mpi_faults_name_the_rank_on_threads, MPI_ONLY)                                       \
    X(mpi_stats_sum_the_ranks, MPI_ONLY)                                                   \
    X(mpi_initializer_runs_on_ranks, MPI_ONLY)                                             \
    X(mpi_executors_in_turn, MPI_ONLY)                                                     \
    X(mpi_in_flight_bounded, MPI_ONLY)                                                     \
    X(mpi_map_crash_fails_its_item, MPI_ONLY)                                              \
    X(mpi_shm_across_hosts, MPI_ONLY)                                                      \
    X(mpi_shm_other_host_knob_checked, MPI_ONLY)                                           \
    /* tests/test_mpi_guard.c */                                                           \
    X(mpi_guard_missing, MPI_ONLY | MPI_SELF)                                              \
    X(mpi_guard_after_mpi_init, MPI_ONLY | MPI_SELF)                                       \
    X(mpi_guard_after_init_single, MPI_ONLY | MPI_SELF)                                    \
    X(mpi_guard_after_init_funneled, MPI_ONLY | MPI_SELF)                                  \
    X(mpi_guard_after_init_serialized, MPI_ONLY | MPI_SELF)                                \
    X(mpi_guard_after_init_multiple, MPI_ONLY | MPI_SELF)                                  \
    /* tests/test_scale.c */                                                               \
    X(scale_largest_pool, BOTH_BACKENDS | SLOW)                                            \
    X(scale_largest_pool_recycle_burst, BOTH_BACKENDS | SLOW)                              \
    /* tests/test_recycle.c */                                                             \
    X(recycle_threads_queued_at_shutdown, THREADS_ONLY)                                    \
    X(recycle_process_zombies_bounded, PROCESSES_ONLY)                                     \
    X(recycle_shm_cache_stays_small, PROCESSES_ONLY)                                       \
    /* tests/test_inside.c */                                                              \
    X(inside_callback_shutdown_waits, BOTH_BACKENDS)                                       \
    X(inside_callback_shutdown_cancels, BOTH_BACKENDS)                                     \
    X(inside_callback_shutdown_recycles, BOTH_BACKENDS)                                    \
    X(inside_task_shutdown_waits, THREADS_ONLY)                                            \
    X(inside_deadline_callback_keeps_timer, THREADS_ONLY)                                  \
    X(inside_bad_input, BOTH_BACKENDS)                                                     \
    /* tests/test_sys.c */                                                                 \
    X(sys_lock_excludes, 0)                                                                \
    /* tests/test_decode.c */                                                              \
    X(decode_ring_framing, 0)                                                              \
    X(decode_completion_checks, 0)                                                         \
    X(decode_chunk_progress, 0)                                                            \
    X(decode_zygote_datagrams, 0)                                                          \
    X(decode_shm_ref_not_a_memfd, 0)                                                       \
    X(decode_worker_scribbles_ring, PROCESSES_ONLY)                                        \
    X(decode_worker_scribbles_request, PROCESSES_ONLY)                                     \
    /* tests/test_soak.c */                                                                \
    X(soak_mixed, BOTH_BACKENDS)                                                           \
    X(soak_cancel_running_after_finish, PROCESSES_ONLY)                                    \
    X(soak_late_stop_ignored, PROCESSES_ONLY)                                              \
    X(soak_crash_in_last_quota_counted, PROCESSES_ONLY)                                    \
    /* end of TEST_LIST */
