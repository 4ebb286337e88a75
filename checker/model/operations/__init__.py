"""The operations, grouped the way the kernel groups them.

* :mod:`.guest`: what the hardware does for the guest, with no VM exit (TLB fills,
  stores, evictions);
* :mod:`.faults`: a vCPU's page faults (``arch/x86/kvm/mmu/mmu.c``), slow and fast,
  and the prefetch around them;
* :mod:`.shadow`: the shadow MMU's guest page-table tracking (sync,
  write-protection for write-tracking);
* :mod:`.notifier`: the host's MMU notifier (aging, zapping);
* :mod:`.dirty_log`: dirty logging (``kvm_mmu_slot_apply_flags``, the harvest ioctls).
"""
