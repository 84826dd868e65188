using Hangfire.Dashboard;
using LongSeqService.Shared.Keys;

namespace LongSeqService.Api.Auth;

/// <summary>/hangfire is for admins only (bearer key, or the longseq_key cookie in a browser).</summary>
public sealed class AdminOnlyDashboard : IDashboardAuthorizationFilter
{
    public bool Authorize(DashboardContext context) => context.GetHttpContext().User.IsInRole(KeyRoles.Admin);
}
