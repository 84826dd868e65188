namespace LongSeqService.Shared; internal static class AssemblyMarker;
