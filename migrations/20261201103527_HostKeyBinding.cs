using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace LongSeqService.Migrations
{
    /// <inheritdoc />
    public partial class HostKeyBinding : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<Guid>(
                name: "key_id",
                table: "hosts",
                type: "uuid",
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "ix_hosts_key_id",
                table: "hosts",
                column: "key_id",
                unique: true);

            migrationBuilder.AddForeignKey(
                name: "fk_hosts_api_keys_key_id",
                table: "hosts",
                column: "key_id",
                principalTable: "api_keys",
                principalColumn: "id",
                onDelete: ReferentialAction.SetNull);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropForeignKey(
                name: "fk_hosts_api_keys_key_id",
                table: "hosts");

            migrationBuilder.DropIndex(
                name: "ix_hosts_key_id",
                table: "hosts");

            migrationBuilder.DropColumn(
                name: "key_id",
                table: "hosts");
        }
    }
}
