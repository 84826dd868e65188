using LongSeqService.Scheduler.Data;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace LongSeqService.Migrations
{
    /// <summary>jobs.rank_memory_bytes: each rank's predicted peak (the memory model), for placement's memory filter.</summary>
    [DbContext(typeof(ServiceDb))]
    [Migration("20261201110000_JobRankMemory")]
    public partial class JobRankMemory : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<long>(
                name: "rank_memory_bytes",
                table: "jobs",
                type: "bigint",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "rank_memory_bytes",
                table: "jobs");
        }
    }
}
