using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace LongSeqService.Trainer.Parallel.Mpi;

/// <summary>
/// The MPI library's life in this process (one init, one finalize) and what every call needs: waiting
/// for a request without burning a core, and the address of a tensor's own memory.
/// </summary>
public static unsafe partial class MpiRuntime
{
    private static readonly List<MpiCollectives> Communicators = [];

    /// <summary>Whether MPICH's library can be loaded on this machine.</summary>
    public static bool IsAvailable() => NativeLibrary.TryLoad(MpiNative.LibraryName, out _);

    /// <summary>Whether this process was started by <c>mpiexec</c> (Hydra sets the PMI variables).</summary>
    public static bool LaunchedByMpiexec => Environment.GetEnvironmentVariable("PMI_RANK") is not null;

    /// <summary>
    /// Initialises MPI with full thread support (a rank's backward pass communicates from the thread that
    /// called <c>.backward()</c>) and returns the collectives of the whole world.
    /// </summary>
    public static MpiCollectives InitWorld()
    {
        int provided;
        MpiNative.Check(MpiNative.InitThread(null, 0, MpiNative.ThreadMultiple, &provided), "MPI_Init_thread");
        if (provided < MpiNative.ThreadMultiple)
            throw new MpiException($"MPI_Init_thread gave thread level {provided}; the ranks need MPI_THREAD_MULTIPLE ({MpiNative.ThreadMultiple})");
        return new MpiCollectives(MpiNative.CommWorld, worldRank: -1);
    }

    /// <summary>
    /// Completes what is still in flight (buffered sends) and shuts MPI down. <paramref name="finalize"/> false
    /// leaves out MPI_Finalize, for a world whose ranks have just passed a barrier with nothing left to say:
    /// over UCX's tcp transport (ranks on several hosts) MPI_Finalize can hang for good while it flushes the
    /// endpoints of peers that already wait in Hydra's exit fence (measured here with MPICH 4.0.2; openucx/ucx#8738).
    /// Hydra takes an exit status of 0 as a clean end.
    /// </summary>
    public static void Shutdown(bool finalize = true)
    {
        lock (Communicators)
            foreach (var c in Communicators) c.CompleteSends();
        if (finalize) MpiNative.Check(MpiNative.Finalize(), "MPI_Finalize");
    }

    internal static void Register(MpiCollectives c)
    {
        lock (Communicators) Communicators.Add(c);
    }

    /// <summary>
    /// Waits for a request by polling <c>MPI_Test</c>: a short spin (a reply on a fast path arrives within
    /// microseconds), then sleeps that grow from 50 µs to 500 µs, so a rank blocked on a peer leaves the
    /// core to the ranks that compute (MPICH's own blocking calls spin at 100%).
    /// </summary>
    internal static void Wait(int* request, string call)
    {
        long start = 0;
        for (int polls = 0; ; polls++)
        {
            int done;
            MpiNative.Check(MpiNative.Test(request, &done, MpiNative.StatusIgnore), call);
            if (done != 0) return;
            if (polls < 64) { Thread.SpinWait(16); continue; }
            if (start == 0) start = Environment.TickCount64;
            USleep(Environment.TickCount64 - start < 20 ? 50u : 500u);
        }
    }

    /// <summary>Whether a request has completed (and, if so, releases it).</summary>
    internal static bool Test(int* request, string call)
    {
        int done;
        MpiNative.Check(MpiNative.Test(request, &done, MpiNative.StatusIgnore), call);
        return done != 0;
    }

    /// <summary>The address of a contiguous CPU tensor's first element (its own memory: MPI reads and writes it in place).</summary>
    internal static nint DataPointer(Tensor t)
    {
        if (t.device_type != TorchSharp.DeviceType.CPU) throw new NotSupportedException($"MPI collectives move CPU tensors; got one on {t.device}");
        if (!t.is_contiguous()) throw new ArgumentException("MPI transfers need a contiguous tensor");
        return t.numel() == 0 ? 0 : TensorData(t.Handle);
    }

    /// <summary>A message's length as an MPI count: the widest datatype whose size divides it (counts are C ints).</summary>
    internal static (int Count, int Datatype) Units(long bytes)
    {
        var (size, type) = bytes % 8 == 0 ? (8, MpiNative.LongLong) : bytes % 4 == 0 ? (4, MpiNative.Int)
            : bytes % 2 == 0 ? (2, MpiNative.Short) : (1, MpiNative.Byte);
        long count = bytes / size;
        if (count > int.MaxValue) throw new NotSupportedException($"a message of {bytes} bytes is beyond one MPI call's count");
        return ((int)count, type);
    }

    internal static long Bytes(Tensor t) => t.numel() * t.element_size();

    [LibraryImport("LibTorchSharp", EntryPoint = "THSTensor_data")]
    private static partial nint TensorData(nint tensor);

    [LibraryImport("libc", EntryPoint = "usleep")]
    private static partial int USleep(uint microseconds);
}
