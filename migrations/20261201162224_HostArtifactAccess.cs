using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace LongSeqService.Migrations
{
    /// <inheritdoc />
    public partial class HostArtifactAccess : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "artifacts",
                table: "hosts",
                type: "text",
                nullable: false,
                defaultValue: "shared");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "artifacts",
                table: "hosts");
        }
    }
}
