using System.Runtime.InteropServices;

namespace LongSeqService.Trainer.Parallel.Mpi;

/// <summary>
/// The few MPI calls the collectives use, bound by hand to MPICH's <c>libmpich.so.12</c> (resolved with
/// <see cref="NativeLibrary"/> at first use, so a machine without MPICH fails only when MPI is asked
/// for, with a message that says how to install it). Handles are MPICH's: plain ints
/// (<c>typedef int MPI_Comm</c>, …). The constants are MPICH 4.0.2's, from
/// /usr/include/x86_64-linux-gnu/mpich/mpi.h (Debian 12) — another MPI (Open MPI) uses pointers and
/// would need another binding.
/// Only non-blocking calls are bound: blocking MPICH calls busy-poll a core, which on a machine with
/// fewer cores than ranks takes the CPU away from the ranks that compute (<see cref="MpiRuntime.Wait"/>
/// polls with a back-off instead).
/// </summary>
internal static unsafe class MpiNative
{
    public const string LibraryName = "libmpich.so.12";

    public const int CommWorld = 0x44000000;
    public const int CommNull = 0x04000000;
    public const int GroupNull = 0x08000000;
    public const int RequestNull = 0x2c000000;
    public const int ThreadMultiple = 3;
    public const int Success = 0;
    public static readonly nint StatusIgnore = 1;                                       // (MPI_Status*)1

    // Datatypes for moving bytes: the widest whose size divides the message (counts are C ints).
    public const int Byte = 0x4c00010d;
    public const int Short = 0x4c000203;
    public const int Int = 0x4c000405;
    public const int LongLong = 0x4c000809;

    private static readonly nint Library = Load();

    public static readonly delegate* unmanaged<int*, nint, int, int*, int> InitThread = (delegate* unmanaged<int*, nint, int, int*, int>)Export("MPI_Init_thread");
    public static readonly delegate* unmanaged<int*, int> Initialized = (delegate* unmanaged<int*, int>)Export("MPI_Initialized");
    public static readonly delegate* unmanaged<int*, int> Finalized = (delegate* unmanaged<int*, int>)Export("MPI_Finalized");
    public static readonly delegate* unmanaged<int> Finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
    public static readonly delegate* unmanaged<int, int*, int> CommRank = (delegate* unmanaged<int, int*, int>)Export("MPI_Comm_rank");
    public static readonly delegate* unmanaged<int, int*, int> CommSize = (delegate* unmanaged<int, int*, int>)Export("MPI_Comm_size");
    public static readonly delegate* unmanaged<int, int, int> Abort = (delegate* unmanaged<int, int, int>)Export("MPI_Abort");

    // (buf, count, datatype, peer, tag, comm, request)
    public static readonly delegate* unmanaged<nint, int, int, int, int, int, int*, int> Isend = (delegate* unmanaged<nint, int, int, int, int, int, int*, int>)Export("MPI_Isend");
    public static readonly delegate* unmanaged<nint, int, int, int, int, int, int*, int> Irecv = (delegate* unmanaged<nint, int, int, int, int, int, int*, int>)Export("MPI_Irecv");
    // (request, flag, status)
    public static readonly delegate* unmanaged<int*, int*, nint, int> Test = (delegate* unmanaged<int*, int*, nint, int>)Export("MPI_Test");

    // (sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm, request)
    public static readonly delegate* unmanaged<nint, int, int, nint, int, int, int, int*, int> Iallgather = (delegate* unmanaged<nint, int, int, nint, int, int, int, int*, int>)Export("MPI_Iallgather");
    public static readonly delegate* unmanaged<nint, int, int, nint, int, int, int, int*, int> Ialltoall = (delegate* unmanaged<nint, int, int, nint, int, int, int, int*, int>)Export("MPI_Ialltoall");
    // (sendbuf, sendcount, sendtype, recvbuf, recvcounts, displs, recvtype, comm, request)
    public static readonly delegate* unmanaged<nint, int, int, nint, int*, int*, int, int, int*, int> Iallgatherv = (delegate* unmanaged<nint, int, int, nint, int*, int*, int, int, int*, int>)Export("MPI_Iallgatherv");
    // (buf, count, datatype, root, comm, request)
    public static readonly delegate* unmanaged<nint, int, int, int, int, int*, int> Ibcast = (delegate* unmanaged<nint, int, int, int, int, int*, int>)Export("MPI_Ibcast");
    public static readonly delegate* unmanaged<int, int*, int> Ibarrier = (delegate* unmanaged<int, int*, int>)Export("MPI_Ibarrier");

    public static readonly delegate* unmanaged<int, int*, int> CommGroup = (delegate* unmanaged<int, int*, int>)Export("MPI_Comm_group");
    public static readonly delegate* unmanaged<int, int, int*, int*, int> GroupIncl = (delegate* unmanaged<int, int, int*, int*, int>)Export("MPI_Group_incl");
    public static readonly delegate* unmanaged<int*, int> GroupFree = (delegate* unmanaged<int*, int>)Export("MPI_Group_free");
    // (comm, group, tag, newcomm): collective over the group's members only (MPI-3).
    public static readonly delegate* unmanaged<int, int, int, int*, int> CommCreateGroup = (delegate* unmanaged<int, int, int, int*, int>)Export("MPI_Comm_create_group");
    public static readonly delegate* unmanaged<int, byte*, int*, int> ErrorString = (delegate* unmanaged<int, byte*, int*, int>)Export("MPI_Error_string");

    /// <summary>Throws with MPI's own message when a call did not return MPI_SUCCESS.</summary>
    public static void Check(int code, string call)
    {
        if (code == Success) return;
        var buffer = stackalloc byte[512];
        int length = 0;
        var message = ErrorString(code, buffer, &length) == Success ? Marshal.PtrToStringUTF8((nint)buffer, length) : $"error code {code}";
        throw new MpiException($"{call} failed: {message}");
    }

    private static nint Load()
    {
        if (NativeLibrary.TryLoad(LibraryName, out var handle)) return handle;
        throw new DllNotFoundException(
            $"{LibraryName} (MPICH) was not found; ranks as processes need MPICH: apt-get install -y mpich");
    }

    private static nint Export(string name) => NativeLibrary.GetExport(Library, name);
}

/// <summary>An MPI call that returned an error.</summary>
public sealed class MpiException(string message) : Exception(message);
