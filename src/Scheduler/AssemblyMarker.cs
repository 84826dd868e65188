namespace LongSeqService.Scheduler; internal static class AssemblyMarker;
