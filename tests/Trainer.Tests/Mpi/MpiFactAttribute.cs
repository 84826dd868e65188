using LongSeqService.Trainer.Parallel.Mpi;

namespace LongSeqService.Trainer.Tests.Mpi;

/// <summary>A test that needs MPICH (scripts/test.sh installs it); skipped, saying why, where it is missing.</summary>
public sealed class MpiFactAttribute : FactAttribute
{
    public MpiFactAttribute()
    {
        if (!MpiJob.IsAvailable) Skip = MpiJob.InstallHint;
    }
}

/// <summary>As <see cref="MpiFactAttribute"/>, for theories.</summary>
public sealed class MpiTheoryAttribute : TheoryAttribute
{
    public MpiTheoryAttribute()
    {
        if (!MpiJob.IsAvailable) Skip = MpiJob.InstallHint;
    }
}

/// <summary>A test that makes hosts of network namespaces (<see cref="NamespaceHosts"/>): skipped, saying why, without root, iproute2 or MPICH.</summary>
public sealed class NamespaceHostsFactAttribute : FactAttribute
{
    public NamespaceHostsFactAttribute()
    {
        if (NamespaceHosts.Unavailable is { } why) Skip = why;
    }
}
