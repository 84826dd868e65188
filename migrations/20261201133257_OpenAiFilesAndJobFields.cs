using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace LongSeqService.Migrations
{
    /// <inheritdoc />
    public partial class OpenAiFilesAndJobFields : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "metadata",
                table: "jobs",
                type: "jsonb",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "suffix",
                table: "jobs",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "source_path",
                table: "datasets",
                type: "text",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "metadata",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "suffix",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "source_path",
                table: "datasets");
        }
    }
}
