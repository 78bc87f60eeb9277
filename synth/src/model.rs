//! The static model: exit reasons per ISA, host kernel/QEMU/libc stacks,
//! the guest kernel and guest program, and the guest activity templates.

use std::collections::HashMap;

use crate::Isa;
use crate::elf::{self, ElfImage};
use crate::error::Error;
use crate::perf::{MISC_KERNEL, MISC_USER, PERF_CONTEXT_KERNEL, PERF_CONTEXT_USER};
use crate::rng::hash_str;

/// The host kallsyms shipped with the generator (a subset of a real
/// /proc/kallsyms: the symbols used in stacks plus their neighbours).
pub(crate) const HOST_KALLSYMS: &str = include_str!("../data/host.kallsyms");

/// Abstract exit kinds; mapped to VMX or SVM codes by [`ExitKind::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ExitKind {
    EptViolation,
    IoInstruction,
    Hlt,
    MsrWrite,
    MsrRead,
    ExternalInterrupt,
    Cpuid,
    Pause,
    EptMisconfig,
    PreemptionTimer,
}

pub(crate) const EXIT_KINDS: [ExitKind; 10] = [
    ExitKind::EptViolation,
    ExitKind::IoInstruction,
    ExitKind::Hlt,
    ExitKind::MsrWrite,
    ExitKind::MsrRead,
    ExitKind::ExternalInterrupt,
    ExitKind::Cpuid,
    ExitKind::Pause,
    ExitKind::EptMisconfig,
    ExitKind::PreemptionTimer,
];

impl ExitKind {
    /// (exit_reason code, name as perf prints it) for the ISA.
    pub(crate) fn code(self, isa: Isa) -> (u32, &'static str) {
        match isa {
            Isa::Vmx => match self {
                ExitKind::EptViolation => (48, "EPT_VIOLATION"),
                ExitKind::IoInstruction => (30, "IO_INSTRUCTION"),
                ExitKind::Hlt => (12, "HLT"),
                ExitKind::MsrWrite => (32, "MSR_WRITE"),
                ExitKind::MsrRead => (31, "MSR_READ"),
                ExitKind::ExternalInterrupt => (1, "EXTERNAL_INTERRUPT"),
                ExitKind::Cpuid => (10, "CPUID"),
                ExitKind::Pause => (40, "PAUSE_INSTRUCTION"),
                ExitKind::EptMisconfig => (49, "EPT_MISCONFIG"),
                ExitKind::PreemptionTimer => (52, "PREEMPTION_TIMER"),
            },
            Isa::Svm => match self {
                ExitKind::EptViolation | ExitKind::EptMisconfig => (0x400, "npf"),
                ExitKind::IoInstruction => (0x07b, "io"),
                ExitKind::Hlt => (0x078, "hlt"),
                ExitKind::MsrWrite | ExitKind::MsrRead => (0x07c, "msr"),
                ExitKind::ExternalInterrupt => (0x060, "interrupt"),
                ExitKind::Cpuid => (0x072, "cpuid"),
                ExitKind::Pause => (0x077, "pause"),
                ExitKind::PreemptionTimer => (0x064, "vintr"),
            },
        }
    }

    pub(crate) fn index(self) -> usize {
        EXIT_KINDS.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// A frame of a stack specification.
#[derive(Debug, Clone, Copy)]
pub(crate) enum F {
    /// Host kernel symbol (host.kallsyms).
    K(&'static str),
    /// QEMU binary symbol.
    Q(&'static str),
    /// libc symbol.
    L(&'static str),
    /// Unresolvable frame in the given mapped file (index into `Unresolved`).
    U(&'static str, u64),
}

/// The KVM_RUN ioctl path in the host kernel, leaf first.
pub(crate) const K_RUN: [F; 6] = [
    F::K("kvm_arch_vcpu_ioctl_run"),
    F::K("kvm_vcpu_ioctl"),
    F::K("__x64_sys_ioctl"),
    F::K("x64_sys_call"),
    F::K("do_syscall_64"),
    F::K("entry_SYSCALL_64_after_hwframe"),
];
/// The QEMU vCPU thread user frames below the ioctl, leaf first.
pub(crate) const Q_RUN: [F; 7] = [
    F::L("ioctl"),
    F::Q("kvm_vcpu_ioctl"),
    F::Q("kvm_cpu_exec"),
    F::Q("kvm_vcpu_thread_fn"),
    F::Q("qemu_thread_start"),
    F::L("start_thread"),
    F::L("clone3"),
];
const Q_EXEC: [F; 5] = [
    F::Q("kvm_cpu_exec"),
    F::Q("kvm_vcpu_thread_fn"),
    F::Q("qemu_thread_start"),
    F::L("start_thread"),
    F::L("clone3"),
];

/// A stack specification: kernel frames (leaf first) and user frames (leaf first).
#[derive(Debug, Clone)]
pub(crate) struct StackSpec {
    pub(crate) kernel: Vec<F>,
    pub(crate) user: Vec<F>,
}

fn spec(kernel_head: &[F], kernel_tail: &[F], user: &[F]) -> StackSpec {
    let mut kernel = kernel_head.to_vec();
    kernel.extend_from_slice(kernel_tail);
    StackSpec {
        kernel,
        user: user.to_vec(),
    }
}

fn kexit(head: &[F]) -> StackSpec {
    let mut h = head.to_vec();
    h.push(F::K("pvm_handle_exit"));
    spec(&h, &K_RUN, &Q_RUN)
}

fn vmm(head: &[F]) -> StackSpec {
    let mut u = head.to_vec();
    u.extend_from_slice(&Q_EXEC);
    spec(&[], &[], &u)
}

/// Host stacks sampled while a vCPU thread handles an exit of `kind`:
/// (kernel-mode variants, VMM (QEMU user) variants, kernel re-entry variants).
pub(crate) fn exit_stacks(kind: ExitKind) -> (Vec<StackSpec>, Vec<StackSpec>, Vec<StackSpec>) {
    use F::*;
    let mw = [
        Q("memory_region_write_accessor"),
        Q("access_with_adjusted_size"),
        Q("memory_region_dispatch_write"),
        Q("flatview_write_continue"),
        Q("address_space_write"),
        Q("address_space_rw"),
    ];
    match kind {
        ExitKind::EptViolation => (
            vec![
                kexit(&[
                    K("kvm_tdp_mmu_map"),
                    K("direct_page_fault"),
                    K("kvm_tdp_page_fault"),
                    K("kvm_mmu_do_page_fault"),
                    K("kvm_mmu_page_fault"),
                ]),
                kexit(&[K("kvm_mmu_page_fault")]),
                kexit(&[]),
            ],
            vec![],
            vec![],
        ),
        ExitKind::EptMisconfig => {
            let mut notify = vec![Q("virtio_queue_notify"), Q("virtio_pci_notify_write")];
            notify.extend_from_slice(&mw);
            let mut notify2 = vec![Q("virtio_pci_notify_write")];
            notify2.extend_from_slice(&mw);
            (
                vec![
                    kexit(&[
                        K("emulator_write_emulated"),
                        K("x86_emulate_insn"),
                        K("x86_emulate_instruction"),
                        K("kvm_mmu_page_fault"),
                    ]),
                    kexit(&[K("kvm_mmu_page_fault")]),
                ],
                vec![
                    vmm(&notify),
                    vmm(&notify2),
                    vmm(&[Q("qemu_mutex_lock_impl"), Q("bql_lock_impl")]),
                ],
                vec![spec(&[K("complete_emulated_mmio")], &K_RUN, &Q_RUN)],
            )
        }
        ExitKind::IoInstruction => {
            let mut ser = vec![Q("serial_ioport_write")];
            ser.extend_from_slice(&mw);
            ser.push(Q("kvm_handle_io"));
            let mut ser2 = vec![Q("memory_region_dispatch_write")];
            ser2.extend_from_slice(&mw[3..]);
            ser2.push(Q("kvm_handle_io"));
            (
                vec![
                    kexit(&[K("emulator_pio_in_out"), K("kvm_fast_pio")]),
                    kexit(&[
                        K("kvm_io_bus_write"),
                        K("emulator_pio_in_out"),
                        K("kvm_fast_pio"),
                    ]),
                ],
                vec![vmm(&ser), vmm(&ser2)],
                vec![spec(&[K("complete_emulated_pio")], &K_RUN, &Q_RUN)],
            )
        }
        ExitKind::Hlt => (
            vec![
                spec(
                    &[
                        K("kvm_vcpu_check_block"),
                        K("kvm_vcpu_block"),
                        K("kvm_vcpu_halt"),
                    ],
                    &K_RUN,
                    &Q_RUN,
                ),
                spec(
                    &[
                        K("kvm_arch_vcpu_runnable"),
                        K("kvm_vcpu_check_block"),
                        K("kvm_vcpu_block"),
                        K("kvm_vcpu_halt"),
                    ],
                    &K_RUN,
                    &Q_RUN,
                ),
                kexit(&[K("kvm_emulate_halt")]),
            ],
            vec![],
            vec![spec(
                &[
                    K("finish_task_switch.isra.0"),
                    K("__schedule"),
                    K("schedule"),
                    K("kvm_vcpu_block"),
                    K("kvm_vcpu_halt"),
                ],
                &K_RUN,
                &Q_RUN,
            )],
        ),
        ExitKind::MsrWrite => (
            vec![
                kexit(&[
                    K("kvm_x2apic_msr_write"),
                    K("kvm_set_msr_common"),
                    K("__kvm_set_msr"),
                    K("kvm_emulate_wrmsr"),
                ]),
                kexit(&[K("kvm_emulate_wrmsr")]),
            ],
            vec![],
            vec![],
        ),
        ExitKind::MsrRead => (
            vec![kexit(&[
                K("kvm_get_msr_common"),
                K("__kvm_get_msr"),
                K("kvm_emulate_rdmsr"),
            ])],
            vec![],
            vec![],
        ),
        ExitKind::ExternalInterrupt => (
            vec![
                spec(
                    &[
                        K("hrtimer_interrupt"),
                        K("__sysvec_apic_timer_interrupt"),
                        K("sysvec_apic_timer_interrupt"),
                        K("asm_sysvec_apic_timer_interrupt"),
                        K("pvm_handle_exit_irqoff"),
                    ],
                    &K_RUN,
                    &Q_RUN,
                ),
                spec(&[K("pvm_handle_exit_irqoff")], &K_RUN, &Q_RUN),
            ],
            vec![],
            vec![],
        ),
        ExitKind::Cpuid => (
            vec![kexit(&[K("kvm_cpuid"), K("kvm_emulate_cpuid")])],
            vec![],
            vec![],
        ),
        ExitKind::Pause => (
            vec![
                kexit(&[K("yield_to"), K("kvm_vcpu_yield_to"), K("kvm_vcpu_on_spin")]),
                kexit(&[K("kvm_vcpu_on_spin")]),
            ],
            vec![],
            vec![],
        ),
        ExitKind::PreemptionTimer => (
            vec![kexit(&[
                K("apic_timer_expired"),
                K("kvm_lapic_expired_hv_timer"),
            ])],
            vec![],
            vec![],
        ),
    }
}

/// Host stacks of tracepoint call sites and of non-exit activity.
pub(crate) mod host {
    use super::F::{self, *};
    use super::{K_RUN, Q_RUN, StackSpec, spec};

    pub(crate) fn tp_exit() -> StackSpec {
        spec(&[K("pvm_handle_exit")], &K_RUN, &Q_RUN)
    }
    pub(crate) fn tp_entry() -> StackSpec {
        spec(&[], &K_RUN, &Q_RUN)
    }
    pub(crate) fn tp_pio() -> StackSpec {
        spec(
            &[
                K("emulator_pio_in_out"),
                K("kvm_fast_pio"),
                K("pvm_handle_exit"),
            ],
            &K_RUN,
            &Q_RUN,
        )
    }
    pub(crate) fn tp_mmio() -> StackSpec {
        spec(
            &[
                K("emulator_write_emulated"),
                K("x86_emulate_insn"),
                K("x86_emulate_instruction"),
                K("kvm_mmu_page_fault"),
                K("pvm_handle_exit"),
            ],
            &K_RUN,
            &Q_RUN,
        )
    }
    pub(crate) fn tp_mmio_complete() -> StackSpec {
        spec(&[K("complete_emulated_mmio")], &K_RUN, &Q_RUN)
    }
    pub(crate) fn tp_msr(write: bool) -> StackSpec {
        let h = if write {
            K("kvm_emulate_wrmsr")
        } else {
            K("kvm_emulate_rdmsr")
        };
        spec(&[h, K("pvm_handle_exit")], &K_RUN, &Q_RUN)
    }
    pub(crate) fn tp_userspace_exit() -> StackSpec {
        spec(&[], &K_RUN[1..], &Q_RUN)
    }
    pub(crate) fn tp_tsc_offset() -> StackSpec {
        spec(&[K("kvm_arch_vcpu_load")], &K_RUN[1..], &Q_RUN)
    }
    pub(crate) fn tp_switch_vcpu_out() -> StackSpec {
        spec(
            &[
                K("__schedule"),
                K("schedule"),
                K("kvm_vcpu_block"),
                K("kvm_vcpu_halt"),
            ],
            &K_RUN,
            &Q_RUN,
        )
    }
    pub(crate) const IDLE_TAIL: [F; 4] = [
        K("do_idle"),
        K("cpu_startup_entry"),
        K("start_secondary"),
        K("secondary_startup_64_no_verify"),
    ];
    pub(crate) fn tp_switch_idle_out() -> StackSpec {
        spec(&[K("__schedule"), K("schedule_idle")], &IDLE_TAIL, &[])
    }
    pub(crate) fn tp_switch_task_out(user: &[F]) -> StackSpec {
        spec(
            &[
                K("__schedule"),
                K("schedule"),
                K("do_sys_poll"),
                K("__x64_sys_ppoll"),
                K("x64_sys_call"),
                K("do_syscall_64"),
                K("entry_SYSCALL_64_after_hwframe"),
            ],
            &[],
            user,
        )
    }
    pub(crate) fn idle() -> Vec<StackSpec> {
        vec![
            spec(
                &[
                    K("pv_native_safe_halt"),
                    K("default_idle"),
                    K("arch_cpu_idle"),
                    K("default_idle_call"),
                ],
                &IDLE_TAIL,
                &[],
            ),
            spec(&[K("default_idle_call")], &IDLE_TAIL, &[]),
        ]
    }
    /// Setup of a vCPU thread before its first KVM_RUN.
    pub(crate) fn vcpu_setup() -> Vec<StackSpec> {
        vec![
            spec(
                &[K("kvm_arch_vcpu_load")],
                &K_RUN[1..],
                &[
                    L("ioctl"),
                    Q("kvm_vcpu_ioctl"),
                    Q("kvm_arch_put_registers"),
                    Q("do_kvm_cpu_synchronize_post_init"),
                    Q("kvm_vcpu_thread_fn"),
                    Q("qemu_thread_start"),
                    L("start_thread"),
                    L("clone3"),
                ],
            ),
            spec(
                &[],
                &[],
                &[
                    Q("kvm_arch_put_registers"),
                    Q("do_kvm_cpu_synchronize_post_init"),
                    Q("kvm_vcpu_thread_fn"),
                    Q("qemu_thread_start"),
                    L("start_thread"),
                    L("clone3"),
                ],
            ),
        ]
    }
    pub(crate) const QEMU_MAIN_USER: [F; 10] = [
        L("ppoll"),
        Q("qemu_poll_ns"),
        Q("os_host_main_loop_wait"),
        Q("main_loop_wait"),
        Q("qemu_main_loop"),
        Q("qemu_default_main"),
        Q("main"),
        L("__libc_start_call_main"),
        L("__libc_start_main"),
        Q("_start"),
    ];
    pub(crate) fn qemu_main() -> Vec<StackSpec> {
        vec![
            spec(
                &[
                    K("do_sys_poll"),
                    K("__x64_sys_ppoll"),
                    K("x64_sys_call"),
                    K("do_syscall_64"),
                    K("entry_SYSCALL_64_after_hwframe"),
                ],
                &[],
                &QEMU_MAIN_USER,
            ),
            spec(&[], &[], &QEMU_MAIN_USER[2..]),
            spec(
                &[],
                &[],
                &[
                    Q("timerlist_run_timers"),
                    Q("qemu_clock_run_all_timers"),
                    Q("main_loop_wait"),
                    Q("qemu_main_loop"),
                    Q("qemu_default_main"),
                    Q("main"),
                    L("__libc_start_call_main"),
                    L("__libc_start_main"),
                    Q("_start"),
                ],
            ),
        ]
    }
    pub(crate) const QEMU_IO_TAIL: [F; 6] = [
        Q("aio_poll"),
        Q("iothread_run"),
        Q("qemu_thread_start"),
        L("start_thread"),
        L("clone3"),
        L("clone3"),
    ];
    pub(crate) fn qemu_io() -> Vec<StackSpec> {
        let tail = &QEMU_IO_TAIL[..5];
        let mut a = vec![
            Q("virtio_blk_handle_output"),
            Q("virtio_queue_notify_vq"),
            Q("aio_dispatch_handler"),
        ];
        a.extend_from_slice(tail);
        let mut b = vec![
            L("write"),
            Q("event_notifier_set"),
            Q("virtio_notify_irqfd"),
            Q("virtio_blk_req_complete"),
            Q("aio_dispatch_handler"),
        ];
        b.extend_from_slice(tail);
        vec![
            spec(&[], &[], &a),
            spec(
                &[
                    K("eventfd_write"),
                    K("vfs_write"),
                    K("ksys_write"),
                    K("__x64_sys_write"),
                    K("x64_sys_call"),
                    K("do_syscall_64"),
                    K("entry_SYSCALL_64_after_hwframe"),
                ],
                &[],
                &b,
            ),
        ]
    }
    pub(crate) fn sshd() -> Vec<StackSpec> {
        let user = [
            L("write"),
            U("/usr/sbin/sshd", 0x4a10),
            U("/usr/sbin/sshd", 0x1b2c0),
            U("/usr/sbin/sshd", 0x9e30),
            L("__libc_start_call_main"),
            L("__libc_start_main"),
            U("/usr/sbin/sshd", 0xbd20),
        ];
        vec![
            spec(
                &[
                    K("__tcp_transmit_skb"),
                    K("tcp_push"),
                    K("tcp_sendmsg_locked"),
                    K("tcp_sendmsg"),
                    K("sock_write_iter"),
                    K("vfs_write"),
                    K("ksys_write"),
                    K("__x64_sys_write"),
                    K("x64_sys_call"),
                    K("do_syscall_64"),
                    K("entry_SYSCALL_64_after_hwframe"),
                ],
                &[],
                &user,
            ),
            spec(&[], &[], &user[1..]),
        ]
    }
    pub(crate) fn kworker() -> Vec<StackSpec> {
        let tail = [
            K("process_one_work"),
            K("worker_thread"),
            K("kthread"),
            K("ret_from_fork"),
            K("ret_from_fork_asm"),
        ];
        vec![
            spec(&[K("vmstat_update")], &tail, &[]),
            spec(&[K("drain_local_pages")], &tail, &[]),
        ]
    }
}

/// Names of QEMU functions in the generated qemu-system-x86_64 ELF.
pub(crate) const QEMU_FUNCS: &[&str] = &[
    "_start",
    "main",
    "qemu_default_main",
    "qemu_main_loop",
    "main_loop_wait",
    "os_host_main_loop_wait",
    "qemu_poll_ns",
    "qemu_clock_run_all_timers",
    "timerlist_run_timers",
    "qemu_thread_start",
    "kvm_vcpu_thread_fn",
    "kvm_cpu_exec",
    "kvm_vcpu_ioctl",
    "kvm_handle_io",
    "kvm_arch_put_registers",
    "do_kvm_cpu_synchronize_post_init",
    "address_space_rw",
    "address_space_write",
    "flatview_write_continue",
    "memory_region_dispatch_write",
    "access_with_adjusted_size",
    "memory_region_write_accessor",
    "serial_ioport_write",
    "virtio_pci_notify_write",
    "virtio_queue_notify",
    "virtio_queue_notify_vq",
    "virtio_blk_handle_output",
    "virtio_blk_req_complete",
    "virtio_notify_irqfd",
    "event_notifier_set",
    "aio_poll",
    "aio_dispatch_handler",
    "iothread_run",
    "bql_lock_impl",
    "qemu_mutex_lock_impl",
];

/// Names of libc functions in the generated libc.so.6 ELF.
pub(crate) const LIBC_FUNCS: &[&str] = &[
    "__libc_start_call_main",
    "__libc_start_main",
    "start_thread",
    "clone3",
    "ioctl",
    "ppoll",
    "write",
    "read",
    "pthread_mutex_lock",
];

/// Path of the QEMU binary (as in MMAP2 records and under host-root/).
pub(crate) const QEMU_PATH: &str = "/usr/bin/qemu-system-x86_64";
/// Path of libc.
pub(crate) const LIBC_PATH: &str = "/usr/lib/x86_64-linux-gnu/libc.so.6";
/// Path of the guest program inside the guest.
pub(crate) const GUESTAPP_PATH: &str = "/usr/bin/guestapp";

/// Guest program functions.
pub(crate) const GUESTAPP_FUNCS: &[&str] = &[
    "_start",
    "__libc_start_main",
    "main",
    "worker_loop",
    "compute_hash",
    "fill_buffer",
    "write_log",
    "report_progress",
    "update_stats",
    "detect_cpu_features",
    "cpuid_query",
    "__write",
    "__lll_lock_wait",
];

/// Guest kernel functions (the generated guest kallsyms, in address order).
pub(crate) const GUEST_KERNEL_FUNCS: &[&str] = &[
    "startup_64",
    "secondary_startup_64_no_verify",
    "start_secondary",
    "cpu_startup_entry",
    "do_idle",
    "default_idle_call",
    "arch_cpu_idle",
    "default_idle",
    "pv_native_safe_halt",
    "ret_from_fork_asm",
    "ret_from_fork",
    "kthread",
    "worker_thread",
    "process_one_work",
    "vmstat_update",
    "refresh_cpu_vm_stats",
    "native_read_msr",
    "native_write_msr",
    "lapic_next_deadline",
    "clockevents_program_event",
    "tick_program_event",
    "hrtimer_interrupt",
    "__sysvec_apic_timer_interrupt",
    "sysvec_apic_timer_interrupt",
    "asm_sysvec_apic_timer_interrupt",
    "asm_exc_page_fault",
    "exc_page_fault",
    "do_user_addr_fault",
    "handle_mm_fault",
    "__handle_mm_fault",
    "clear_page_erms",
    "entry_SYSCALL_64_after_hwframe",
    "do_syscall_64",
    "__x64_sys_write",
    "ksys_write",
    "vfs_write",
    "ext4_file_write_iter",
    "ext4_buffered_write_iter",
    "blk_mq_flush_plug_list",
    "virtio_queue_rq",
    "virtqueue_notify",
    "vp_notify",
    "iowrite16",
    "tty_write",
    "file_tty_write",
    "n_tty_write",
    "uart_write",
    "serial8250_start_tx",
    "io_serial_out",
    "__x64_sys_futex",
    "do_futex",
    "futex_wake",
    "_raw_spin_lock",
    "native_queued_spin_lock_slowpath",
    "schedule",
    "__schedule",
];

/// Base of the guest kernel text.
pub(crate) const GUEST_KERNEL_BASE: u64 = 0xffff_ffff_8100_0000;

/// Who runs a guest template inside the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuestTask {
    App,
    Idle,
    Kworker,
}

/// A guest activity: a guest stack (root first) and the exits it causes.
#[derive(Debug, Clone)]
pub(crate) struct GuestTemplate {
    pub(crate) user: &'static [&'static str],
    pub(crate) kernel: &'static [&'static str],
    pub(crate) task: GuestTask,
    pub(crate) run_mean_us: f64,
    /// Relative weights of the next exit, indexed like [`EXIT_KINDS`].
    pub(crate) exits: [u32; 10],
    /// Stationary choice weight.
    pub(crate) weight: u32,
}

const APP: [&str; 4] = ["_start", "__libc_start_main", "main", "worker_loop"];

/// Index of the idle template (vCPUs start idle; HLT comes from it).
pub(crate) const IDLE_TEMPLATE: usize = 5;

/// The guest templates.
pub(crate) fn guest_templates() -> Vec<GuestTemplate> {
    //                 EPTV IO HLT MSRW MSRR EXTI CPUID PAUSE EPTM PTIM
    vec![
        GuestTemplate {
            user: &[
                "_start",
                "__libc_start_main",
                "main",
                "worker_loop",
                "compute_hash",
            ],
            kernel: &[],
            task: GuestTask::App,
            run_mean_us: 150.0,
            exits: [10, 0, 0, 8, 0, 30, 2, 0, 0, 25],
            weight: 30,
        },
        GuestTemplate {
            user: &[
                "_start",
                "__libc_start_main",
                "main",
                "worker_loop",
                "fill_buffer",
            ],
            kernel: &[
                "asm_exc_page_fault",
                "exc_page_fault",
                "do_user_addr_fault",
                "handle_mm_fault",
                "__handle_mm_fault",
                "clear_page_erms",
            ],
            task: GuestTask::App,
            run_mean_us: 40.0,
            exits: [70, 0, 0, 5, 0, 10, 0, 0, 0, 5],
            weight: 12,
        },
        GuestTemplate {
            user: &[
                "_start",
                "__libc_start_main",
                "main",
                "worker_loop",
                "write_log",
                "__write",
            ],
            kernel: &[
                "entry_SYSCALL_64_after_hwframe",
                "do_syscall_64",
                "__x64_sys_write",
                "ksys_write",
                "vfs_write",
                "ext4_file_write_iter",
                "ext4_buffered_write_iter",
                "blk_mq_flush_plug_list",
                "virtio_queue_rq",
                "virtqueue_notify",
                "vp_notify",
                "iowrite16",
            ],
            task: GuestTask::App,
            run_mean_us: 30.0,
            exits: [10, 0, 0, 10, 0, 10, 0, 0, 60, 0],
            weight: 8,
        },
        GuestTemplate {
            user: &[
                "_start",
                "__libc_start_main",
                "main",
                "report_progress",
                "__write",
            ],
            kernel: &[
                "entry_SYSCALL_64_after_hwframe",
                "do_syscall_64",
                "__x64_sys_write",
                "ksys_write",
                "vfs_write",
                "tty_write",
                "file_tty_write",
                "n_tty_write",
                "uart_write",
                "serial8250_start_tx",
                "io_serial_out",
            ],
            task: GuestTask::App,
            run_mean_us: 20.0,
            exits: [0, 80, 0, 5, 0, 10, 0, 0, 0, 5],
            weight: 4,
        },
        GuestTemplate {
            user: &APP,
            kernel: &[
                "asm_sysvec_apic_timer_interrupt",
                "sysvec_apic_timer_interrupt",
                "__sysvec_apic_timer_interrupt",
                "hrtimer_interrupt",
                "tick_program_event",
                "clockevents_program_event",
                "lapic_next_deadline",
                "native_write_msr",
            ],
            task: GuestTask::App,
            run_mean_us: 10.0,
            exits: [0, 0, 0, 85, 5, 5, 0, 0, 0, 5],
            weight: 10,
        },
        GuestTemplate {
            user: &[],
            kernel: &[
                "secondary_startup_64_no_verify",
                "start_secondary",
                "cpu_startup_entry",
                "do_idle",
                "default_idle_call",
                "arch_cpu_idle",
                "default_idle",
                "pv_native_safe_halt",
            ],
            task: GuestTask::Idle,
            run_mean_us: 15.0,
            exits: [0, 0, 85, 5, 0, 10, 0, 0, 0, 0],
            weight: 20,
        },
        GuestTemplate {
            user: &[
                "_start",
                "__libc_start_main",
                "main",
                "worker_loop",
                "update_stats",
                "__lll_lock_wait",
            ],
            kernel: &[
                "entry_SYSCALL_64_after_hwframe",
                "do_syscall_64",
                "__x64_sys_futex",
                "do_futex",
                "futex_wake",
                "_raw_spin_lock",
                "native_queued_spin_lock_slowpath",
            ],
            task: GuestTask::App,
            run_mean_us: 25.0,
            exits: [0, 0, 0, 5, 0, 15, 0, 70, 0, 10],
            weight: 6,
        },
        GuestTemplate {
            user: &[
                "_start",
                "__libc_start_main",
                "main",
                "detect_cpu_features",
                "cpuid_query",
            ],
            kernel: &[],
            task: GuestTask::App,
            run_mean_us: 20.0,
            exits: [0, 0, 0, 0, 0, 10, 90, 0, 0, 0],
            weight: 3,
        },
        GuestTemplate {
            user: &[],
            kernel: &[
                "ret_from_fork_asm",
                "ret_from_fork",
                "kthread",
                "worker_thread",
                "process_one_work",
                "vmstat_update",
                "refresh_cpu_vm_stats",
                "native_read_msr",
            ],
            task: GuestTask::Kworker,
            run_mean_us: 60.0,
            exits: [20, 0, 0, 0, 30, 30, 0, 0, 0, 20],
            weight: 7,
        },
    ]
}

/// A resolved host symbol table: kernel from kallsyms.
#[derive(Debug)]
pub(crate) struct HostKernel {
    pub(crate) syms: HashMap<String, (u64, u64)>,
    pub(crate) text_start: u64,
    pub(crate) text_end: u64,
}

impl HostKernel {
    pub(crate) fn parse() -> Result<HostKernel, Error> {
        let mut list: Vec<(u64, String)> = Vec::new();
        for line in HOST_KALLSYMS.lines() {
            let mut p = line.split_whitespace();
            let (Some(a), Some(_t), Some(n)) = (p.next(), p.next(), p.next()) else {
                continue;
            };
            let a = u64::from_str_radix(a, 16)
                .map_err(|e| Error::EmbeddedData(format!("host.kallsyms: {e}")))?;
            list.push((a, n.to_string()));
        }
        list.sort();
        let mut syms = HashMap::new();
        for (i, (a, n)) in list.iter().enumerate() {
            let next = list
                .iter()
                .skip(i + 1)
                .find(|(b, _)| b > a)
                .map(|x| x.0)
                .unwrap_or(a + 0x100);
            syms.entry(n.clone()).or_insert((*a, (next - a).max(1)));
        }
        let text_start = syms
            .get("_text")
            .map(|s| s.0)
            .ok_or_else(|| Error::EmbeddedData("host.kallsyms lacks _text".into()))?;
        let text_end = syms
            .get("_etext")
            .map(|s| s.0)
            .unwrap_or(text_start + 0x100_0000);
        Ok(HostKernel {
            syms,
            text_start,
            text_end,
        })
    }
}

/// A user-space mapping of a process (for address computation).
#[derive(Debug, Clone)]
pub(crate) struct UserMap {
    /// Runtime address of file offset TEXT_OFFSET.
    pub(crate) start: u64,
    pub(crate) image: Option<ElfImage>,
}

impl UserMap {
    pub(crate) fn addr_of(&self, name: &str) -> Option<(u64, u64)> {
        let img = self.image.as_ref()?;
        let f = img.func(name)?;
        Some((self.start + (f.addr - img.base - elf::TEXT_OFFSET), f.size))
    }
}

/// A resolved stack: the callchain as written (with context markers) and
/// the folded host frames, root first.
#[derive(Debug, Clone)]
pub(crate) struct HostStack {
    pub(crate) chain: Vec<u64>,
    /// Index of the leaf IP in `chain`.
    pub(crate) leaf_idx: usize,
    pub(crate) leaf_size: u64,
    pub(crate) misc: u16,
    pub(crate) folded: String,
}

impl HostStack {
    pub(crate) fn leaf_base(&self) -> u64 {
        self.chain.get(self.leaf_idx).copied().unwrap_or(0)
    }
}

/// Resolves a stack spec against the kernel and a process's maps.
pub(crate) fn resolve(
    kernel: &HostKernel,
    qemu: Option<&UserMap>,
    libc: &UserMap,
    spec: &StackSpec,
) -> Result<HostStack, Error> {
    let mut chain = Vec::new();
    let mut folded_leaf_first: Vec<String> = Vec::new();
    let mut leaf_size = 1;
    let mut first = true;
    let mut frame = |f: &F, chain: &mut Vec<u64>| -> Result<(), Error> {
        let (addr, size, name) = match f {
            F::K(n) => {
                let (a, s) = kernel
                    .syms
                    .get(*n)
                    .copied()
                    .ok_or_else(|| Error::EmbeddedData(format!("kernel symbol {n} missing")))?;
                (a, s, (*n).to_string())
            }
            F::Q(n) => {
                let (a, s) = qemu
                    .and_then(|q| q.addr_of(n))
                    .ok_or_else(|| Error::EmbeddedData(format!("qemu symbol {n} missing")))?;
                (a, s, (*n).to_string())
            }
            F::L(n) => {
                let (a, s) = libc
                    .addr_of(n)
                    .ok_or_else(|| Error::EmbeddedData(format!("libc symbol {n} missing")))?;
                (a, s, (*n).to_string())
            }
            F::U(path, off) => {
                let base = 0x5612_3450_0000u64;
                let name = path.rsplit('/').next().unwrap_or(path);
                (base + off, 0x40, format!("[{name}]"))
            }
        };
        if first {
            chain.push(addr);
            leaf_size = size;
            first = false;
        } else {
            // A return address inside the caller, fixed per symbol.
            let off = 1 + hash_str(&name) % size.saturating_sub(1).max(1);
            chain.push(addr + off);
        }
        folded_leaf_first.push(name);
        Ok(())
    };
    let leaf_idx = 1;
    let misc;
    if !spec.kernel.is_empty() {
        chain.push(PERF_CONTEXT_KERNEL);
        misc = MISC_KERNEL;
        for f in &spec.kernel {
            frame(f, &mut chain)?;
        }
    } else {
        misc = MISC_USER;
    }
    if !spec.user.is_empty() {
        chain.push(PERF_CONTEXT_USER);
        for f in &spec.user {
            frame(f, &mut chain)?;
        }
    }
    folded_leaf_first.reverse();
    Ok(HostStack {
        chain,
        leaf_idx,
        leaf_size,
        misc,
        folded: folded_leaf_first.join(";"),
    })
}

/// A resolved guest template: addresses of its frames in the guest.
#[derive(Debug, Clone)]
pub(crate) struct GuestStack {
    /// Guest-file callchain (with markers), leaf first.
    pub(crate) chain: Vec<u64>,
    pub(crate) leaf_size: u64,
    pub(crate) leaf_name: &'static str,
    pub(crate) leaf_is_kernel: bool,
    /// Folded guest frames, root first (user then kernel).
    pub(crate) folded: String,
}

/// Guest symbol addresses: kernel (kallsyms) and guestapp (ELF).
#[derive(Debug, Clone)]
pub(crate) struct GuestSymbols {
    pub(crate) kernel: Vec<(&'static str, u64, u64)>,
    pub(crate) kernel_end: u64,
    pub(crate) app: ElfImage,
}

impl GuestSymbols {
    pub(crate) fn new() -> GuestSymbols {
        let mut kernel = Vec::new();
        let mut a = GUEST_KERNEL_BASE + 0x1000;
        for n in GUEST_KERNEL_FUNCS {
            let size = 0x80 + (hash_str(n) % 0x780) / 16 * 16;
            kernel.push((*n, a, size));
            a += size;
        }
        let app = elf::build("guestapp-1", true, GUESTAPP_FUNCS);
        GuestSymbols {
            kernel,
            kernel_end: a,
            app,
        }
    }

    fn kaddr(&self, n: &str) -> Option<(u64, u64)> {
        self.kernel.iter().find(|k| k.0 == n).map(|k| (k.1, k.2))
    }

    pub(crate) fn kallsyms(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!("{GUEST_KERNEL_BASE:016x} T _text\n"));
        s.push_str(&format!("{GUEST_KERNEL_BASE:016x} T _stext\n"));
        for (n, a, _) in &self.kernel {
            s.push_str(&format!("{a:016x} T {n}\n"));
        }
        s.push_str(&format!("{:016x} T _etext\n", self.kernel_end));
        s
    }

    pub(crate) fn resolve(&self, t: &GuestTemplate) -> Result<GuestStack, Error> {
        let missing = |n: &str| Error::EmbeddedData(format!("guest symbol {n} missing"));
        let mut chain = Vec::new();
        let mut leaf_size = 1;
        let leaf_is_kernel = !t.kernel.is_empty();
        let leaf_name = if leaf_is_kernel {
            t.kernel.last().copied().unwrap_or("")
        } else {
            t.user.last().copied().unwrap_or("")
        };
        if leaf_is_kernel {
            chain.push(PERF_CONTEXT_KERNEL);
            for (i, n) in t.kernel.iter().rev().enumerate() {
                let (a, s) = self.kaddr(n).ok_or_else(|| missing(n))?;
                if i == 0 {
                    leaf_size = s;
                    chain.push(a);
                } else {
                    chain.push(a + 1 + hash_str(n) % (s - 1));
                }
            }
        }
        if !t.user.is_empty() {
            chain.push(PERF_CONTEXT_USER);
            for (i, n) in t.user.iter().rev().enumerate() {
                let f = self.app.func(n).ok_or_else(|| missing(n))?;
                if i == 0 && !leaf_is_kernel {
                    leaf_size = f.size;
                    chain.push(f.addr);
                } else {
                    chain.push(f.addr + 1 + hash_str(n) % (f.size - 1));
                }
            }
        }
        let mut folded: Vec<&str> = t.user.to_vec();
        folded.extend_from_slice(t.kernel);
        Ok(GuestStack {
            chain,
            leaf_size,
            leaf_name,
            leaf_is_kernel,
            folded: folded.join(";"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_resolve_and_idle_index() {
        let t = guest_templates();
        assert_eq!(t[IDLE_TEMPLATE].task, GuestTask::Idle);
        let g = GuestSymbols::new();
        for tpl in &t {
            g.resolve(tpl).expect("guest template resolves");
        }
        let k = HostKernel::parse().expect("kallsyms");
        let libc = UserMap {
            start: 0x7f00_0000_1000,
            image: Some(elf::build("libc", false, LIBC_FUNCS)),
        };
        let qemu = UserMap {
            start: 0x5500_0000_1000,
            image: Some(elf::build("qemu", false, QEMU_FUNCS)),
        };
        for kind in EXIT_KINDS {
            let (a, b, c) = exit_stacks(kind);
            assert!(!a.is_empty());
            for s in a.iter().chain(&b).chain(&c) {
                resolve(&k, Some(&qemu), &libc, s).expect("host stack resolves");
            }
        }
    }
}
