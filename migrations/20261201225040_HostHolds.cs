using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace LongSeqService.Migrations
{
    /// <inheritdoc />
    public partial class HostHolds : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "held_reason",
                table: "hosts",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<DateTime>(
                name: "held_until",
                table: "hosts",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "holds",
                table: "hosts",
                type: "integer",
                nullable: false,
                defaultValue: 0);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "held_reason",
                table: "hosts");

            migrationBuilder.DropColumn(
                name: "held_until",
                table: "hosts");

            migrationBuilder.DropColumn(
                name: "holds",
                table: "hosts");
        }
    }
}
